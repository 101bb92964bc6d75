//! Faults: what the emulator must do like DynamoDB for the fault tests to mean anything, the
//! fault injector itself, and the hang test (every function answers before its Lambda
//! timeout). The fault matrix over the write endpoints is `fault_matrix`.

use aws_sdk_dynamodb::{
    error::ProvideErrorMetadata,
    types::{AttributeValue, TransactWriteItem, Update},
};
use tglink_tests::moto::moto;

/// One `TransactWriteItems` adding `by` to the counter of item `(pk, sk)`, with `token`.
async fn add(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    token: &str,
    by: i64,
) -> Result<(), String> {
    let update = Update::builder()
        .table_name(table)
        .key("pk", AttributeValue::S("idem".into()))
        .key("sk", AttributeValue::S("counter".into()))
        .update_expression("ADD n :by")
        .expression_attribute_values(":by", AttributeValue::N(by.to_string()))
        .build()
        .expect("update");
    client
        .transact_write_items()
        .transact_items(TransactWriteItem::builder().update(update).build())
        .client_request_token(token)
        .send()
        .await
        .map(|_| ())
        .map_err(|e| e.code().unwrap_or("no code").to_owned())
}

async fn counter(client: &aws_sdk_dynamodb::Client, table: &str) -> i64 {
    let item = client
        .get_item()
        .table_name(table)
        .key("pk", AttributeValue::S("idem".into()))
        .key("sk", AttributeValue::S("counter".into()))
        .consistent_read(true)
        .send()
        .await
        .expect("get item")
        .item
        .expect("the counter exists");
    item["n"].as_n().unwrap().parse().unwrap()
}

/// The emulator keeps DynamoDB's `ClientRequestToken` rule (`infra/moto_server_serialized.py`):
/// a repeated `TransactWriteItems` with the same token answers the first success without
/// applying again; the same token with another request is refused; another token applies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moto_keeps_dynamodb_client_request_token_idempotency() {
    let store = moto().new_table().await;
    let (client, table) = (store.client(), store.table());
    add(client, table, "token-a", 1).await.expect("first call");
    add(client, table, "token-a", 1)
        .await
        .expect("the same call again answers its success");
    assert_eq!(counter(client, table).await, 1, "applied once");
    assert_eq!(
        add(client, table, "token-a", 2).await,
        Err("IdempotentParameterMismatchException".to_owned())
    );
    assert_eq!(counter(client, table).await, 1);
    add(client, table, "token-b", 2).await.expect("a new token");
    assert_eq!(counter(client, table).await, 3);
}
