//! The floor of the cold-start benchmark: the smallest `lambda_runtime` function, answering
//! every event with a fixed API Gateway response. Built with the same release profile, in the
//! same run, as the functions it is compared with.

use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::{Value, json};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::run(service_fn(|_event: LambdaEvent<Value>| async {
        Ok::<_, Error>(json!({"statusCode": 200, "body": "hello"}))
    }))
    .await
}
