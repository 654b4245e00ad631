//! Prints what the payments service is (routes, scopes, tables) as JSON, for
//! `lift-deploy synth --manifest`.

fn main() {
    println!("{}", payments::manifest().to_json());
}
