//! The smallest `lambda_runtime` function: the cold-start baseline (`lift-harness lambda
//! coldstart --bin payments --vs lambda-baseline`; the harness builds the same file as
//! `lambda-hello` for its own tests).

use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::{json, Value};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::run(service_fn(|_: LambdaEvent<Value>| async {
        Ok::<_, Error>(json!({"hello": "world"}))
    }))
    .await
}
