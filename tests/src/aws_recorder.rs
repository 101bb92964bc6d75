//! A recording proxy in front of moto: functions get its URL as `AWS_ENDPOINT_URL`, it forwards
//! every request to moto unchanged and records, per AWS call, the IAM authorization requests the
//! call makes — action, resource ARN and the request's condition context.
//!
//! This is what the IAM tests compare `template.yaml` with: the actions each function is *seen*
//! to need while it serves real requests, not a hand-written list. Transactions are authorized
//! per item (AWS: "Permissions for Put, Update, Delete, and Get actions are governed by the
//! permissions used for the underlying PutItem, UpdateItem, DeleteItem, and GetItem operations";
//! `ConditionCheck` needs `dynamodb:ConditionCheckItem`), so a `TransactWriteItems` call is
//! recorded as one request per item action and never as an action of its own.
//!
//! Every item-level DynamoDB request carries the item's partition key as the
//! `dynamodb:LeadingKeys` condition key (the `pk` of its `Key` or `Item`, or the `pk = :v` of a
//! `Query`'s key condition; for a transaction, each item's own), which is what the roles'
//! `ForAllValues:StringLike` conditions in `template.yaml` are held against.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
};

use axum::{Router, body::Bytes, extract::State, http::HeaderMap, response::Response};
use serde_json::Value;

use crate::loopback::LoopbackServer;

/// The account and region moto uses; recorded ARNs are in them.
pub const ACCOUNT: &str = "123456789012";
pub const REGION: &str = "us-east-1";

/// One IAM authorization request made by an AWS call.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct AuthzRequest {
    /// `dynamodb:PutItem`, `kms:Decrypt`, `ssm:GetParameters`, …
    pub action: String,
    /// The resource ARN.
    pub resource: String,
    /// Condition keys of the request (e.g. `kms:EncryptionContext:purpose`).
    pub context: BTreeMap<String, String>,
}

/// One AWS call as seen on the wire.
#[derive(Debug, Clone)]
pub struct RecordedCall {
    /// `X-Amz-Target`, e.g. `DynamoDB_20120810.TransactWriteItems`.
    pub target: String,
    pub requests: Vec<AuthzRequest>,
}

struct Inner {
    upstream: String,
    client: reqwest::Client,
    calls: Mutex<Vec<RecordedCall>>,
}

pub struct AwsRecorder {
    server: LoopbackServer,
    inner: Arc<Inner>,
}

impl AwsRecorder {
    /// Starts a proxy to `upstream` (moto's endpoint) on a free loopback port.
    pub async fn start(upstream: &str) -> Self {
        let inner = Arc::new(Inner {
            upstream: upstream.trim_end_matches('/').to_owned(),
            client: reqwest::Client::builder()
                .no_proxy()
                .build()
                .expect("reqwest client"),
            calls: Mutex::new(Vec::new()),
        });
        let router = Router::new().fallback(forward).with_state(inner.clone());
        Self {
            server: LoopbackServer::start(router, "the AWS recorder").await,
            inner,
        }
    }

    pub fn endpoint(&self) -> String {
        self.server.url()
    }

    /// The calls recorded since the last `take`, in order.
    pub fn take(&self) -> Vec<RecordedCall> {
        std::mem::take(&mut *self.inner.calls.lock().unwrap())
    }

    pub async fn stop(&mut self) {
        self.server.stop().await;
    }
}

async fn forward(State(inner): State<Arc<Inner>>, request: axum::extract::Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, 16 * 1024 * 1024)
        .await
        .unwrap_or_default();
    let target = header(&parts.headers, "x-amz-target").unwrap_or_default();
    let json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    inner.calls.lock().unwrap().push(RecordedCall {
        requests: authz_requests(&target, &json),
        target,
    });

    let path = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    let mut upstream = inner
        .client
        .request(parts.method.clone(), format!("{}{path}", inner.upstream));
    for (name, value) in &parts.headers {
        if !hop_by_hop(name.as_str()) {
            upstream = upstream.header(name, value);
        }
    }
    let answer = match upstream.body(body.to_vec()).send().await {
        Ok(answer) => answer,
        Err(e) => {
            return Response::builder()
                .status(502)
                .body(axum::body::Body::from(format!(
                    "recorder: upstream failed: {e}"
                )))
                .expect("static response");
        }
    };
    let mut response = Response::builder().status(answer.status());
    for (name, value) in answer.headers() {
        if !hop_by_hop(name.as_str()) {
            response = response.header(name, value);
        }
    }
    let bytes: Bytes = answer.bytes().await.unwrap_or_default();
    response
        .body(axum::body::Body::from(bytes))
        .expect("forwarded response")
}

fn hop_by_hop(name: &str) -> bool {
    matches!(
        name,
        "host" | "content-length" | "connection" | "transfer-encoding" | "keep-alive"
    )
}

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

pub fn table_arn(table: &str) -> String {
    format!("arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{table}")
}

pub fn key_arn(key: &str) -> String {
    if key.starts_with("arn:") {
        key.to_owned()
    } else {
        format!("arn:aws:kms:{REGION}:{ACCOUNT}:key/{key}")
    }
}

pub fn parameter_arn(name: &str) -> String {
    format!(
        "arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/{}",
        name.trim_start_matches('/')
    )
}

fn request(action: String, resource: String) -> AuthzRequest {
    AuthzRequest {
        action,
        resource,
        context: BTreeMap::new(),
    }
}

/// The condition key of the partition key(s) an item-level DynamoDB request touches.
pub const LEADING_KEYS: &str = "dynamodb:LeadingKeys";

/// The `pk` a DynamoDB request (or one transaction item) touches: its `Key`'s, its `Item`'s,
/// or the value its `KeyConditionExpression` requires `pk` to equal.
pub fn leading_key(spec: &Value) -> Option<String> {
    let of = |item: &Value| item["pk"]["S"].as_str().map(str::to_owned);
    if let Some(pk) = of(&spec["Key"]).or_else(|| of(&spec["Item"])) {
        return Some(pk);
    }
    let condition = spec["KeyConditionExpression"].as_str()?;
    condition.split(" AND ").find_map(|clause| {
        let (name, value) = clause.split_once('=')?;
        let name = name.trim();
        let name = spec["ExpressionAttributeNames"][name]
            .as_str()
            .unwrap_or(name);
        (name == "pk")
            .then(|| spec["ExpressionAttributeValues"][value.trim()]["S"].as_str())
            .flatten()
            .map(str::to_owned)
    })
}

fn dynamodb_request(action: String, spec: &Value, table: &str) -> AuthzRequest {
    let mut r = request(action, table_arn(table));
    if let Some(pk) = leading_key(spec) {
        r.context.insert(LEADING_KEYS.to_owned(), pk);
    }
    r
}

/// The IAM authorization requests of one call (JSON protocols: DynamoDB, KMS, SSM).
pub fn authz_requests(target: &str, body: &Value) -> Vec<AuthzRequest> {
    let Some((service, operation)) = target.split_once('.') else {
        return vec![request(format!("unknown:{target}"), "*".into())];
    };
    let str_of = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    match service {
        s if s.starts_with("DynamoDB_") => match operation {
            "TransactWriteItems" | "TransactGetItems" => body["TransactItems"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|item| {
                    item.as_object()
                        .into_iter()
                        .flatten()
                        .map(|(kind, spec)| {
                            let action = match kind.as_str() {
                                "ConditionCheck" => "ConditionCheckItem".to_owned(),
                                other => format!("{other}Item"),
                            };
                            dynamodb_request(
                                format!("dynamodb:{action}"),
                                spec,
                                &str_of(&spec["TableName"]),
                            )
                        })
                        .collect::<Vec<_>>()
                })
                .collect(),
            "BatchGetItem" | "BatchWriteItem" => body["RequestItems"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(table, _)| request(format!("dynamodb:{operation}"), table_arn(table)))
                .collect(),
            _ => vec![dynamodb_request(
                format!("dynamodb:{operation}"),
                body,
                &str_of(&body["TableName"]),
            )],
        },
        "TrentService" => {
            let mut r = request(format!("kms:{operation}"), key_arn(&str_of(&body["KeyId"])));
            if let Some(context) = body["EncryptionContext"].as_object() {
                for (k, v) in context {
                    r.context
                        .insert(format!("kms:EncryptionContext:{k}"), str_of(v));
                }
            }
            vec![r]
        }
        "AmazonSSM" => match body["Names"].as_array() {
            Some(names) => names
                .iter()
                .map(|n| request(format!("ssm:{operation}"), parameter_arn(&str_of(n))))
                .collect(),
            None => vec![request(
                format!("ssm:{operation}"),
                parameter_arn(&str_of(&body["Name"])),
            )],
        },
        other => vec![request(format!("{other}:{operation}"), "*".into())],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn transactions_are_authorized_per_item() {
        let body = json!({"TransactItems": [
            {"Put": {"TableName": "t"}},
            {"Update": {"TableName": "t"}},
            {"ConditionCheck": {"TableName": "t"}},
            {"Delete": {"TableName": "t"}},
        ]});
        let actions: Vec<String> = authz_requests("DynamoDB_20120810.TransactWriteItems", &body)
            .into_iter()
            .map(|r| r.action)
            .collect();
        assert_eq!(
            actions,
            [
                "dynamodb:PutItem",
                "dynamodb:UpdateItem",
                "dynamodb:ConditionCheckItem",
                "dynamodb:DeleteItem"
            ]
        );
        let get = authz_requests(
            "DynamoDB_20120810.TransactGetItems",
            &json!({"TransactItems": [{"Get": {"TableName": "t"}}]}),
        );
        assert_eq!(get[0].action, "dynamodb:GetItem");
        assert_eq!(get[0].resource, table_arn("t"));
    }

    #[test]
    fn leading_keys_are_recorded_per_item() {
        let body = json!({"TransactItems": [
            {"Put": {"TableName": "t", "Item": {"pk": {"S": "TGUSER#1"}, "sk": {"S": "LINK"}}}},
            {"ConditionCheck": {"TableName": "t", "Key": {"pk": {"S": "TGBLOCK#1"}, "sk": {"S": "BLOCK"}}}},
        ]});
        let keys: Vec<String> = authz_requests("DynamoDB_20120810.TransactWriteItems", &body)
            .into_iter()
            .map(|r| r.context[LEADING_KEYS].clone())
            .collect();
        assert_eq!(keys, ["TGUSER#1", "TGBLOCK#1"]);
        let update = authz_requests(
            "DynamoDB_20120810.UpdateItem",
            &json!({"TableName": "t", "Key": {"pk": {"S": "VAULT#u"}, "sk": {"S": "CREDENTIALS"}}}),
        );
        assert_eq!(update[0].context[LEADING_KEYS], "VAULT#u");
        let query = authz_requests(
            "DynamoDB_20120810.Query",
            &json!({
                "TableName": "t",
                "KeyConditionExpression": "pk = :pk AND begins_with(sk, :prefix)",
                "ExpressionAttributeValues": {":pk": {"S": "VAULT#u"}, ":prefix": {"S": "W"}},
            }),
        );
        assert_eq!(query[0].context[LEADING_KEYS], "VAULT#u");
        let named = authz_requests(
            "DynamoDB_20120810.Query",
            &json!({
                "TableName": "t",
                "KeyConditionExpression": "#k = :v",
                "ExpressionAttributeNames": {"#k": "pk"},
                "ExpressionAttributeValues": {":v": {"S": "SESSION#h"}},
            }),
        );
        assert_eq!(named[0].context[LEADING_KEYS], "SESSION#h");
        let scan = authz_requests("DynamoDB_20120810.Scan", &json!({"TableName": "t"}));
        assert!(!scan[0].context.contains_key(LEADING_KEYS));
    }

    #[test]
    fn kms_context_and_ssm_names() {
        let kms = authz_requests(
            "TrentService.GenerateDataKey",
            &json!({"KeyId": "k1", "EncryptionContext": {"service": "tglink", "purpose": "p"}}),
        );
        assert_eq!(kms[0].action, "kms:GenerateDataKey");
        assert_eq!(kms[0].resource, key_arn("k1"));
        assert_eq!(kms[0].context["kms:EncryptionContext:service"], "tglink");
        let ssm = authz_requests(
            "AmazonSSM.GetParameters",
            &json!({"Names": ["/tglink/x/A", "/tglink/x/B"], "WithDecryption": true}),
        );
        assert_eq!(ssm.len(), 2);
        assert_eq!(ssm[1].resource, parameter_arn("/tglink/x/B"));
    }
}
