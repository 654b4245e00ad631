//! Data protection benches (being written).
fn main() {}
