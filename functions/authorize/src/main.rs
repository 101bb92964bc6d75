#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    tglink_shared::runtime::run_lambda::<authorize::Authorize>().await
}
