#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    tglink_shared::runtime::run_scheduled_lambda::<signing_keys::SigningKeysFunction>().await
}
