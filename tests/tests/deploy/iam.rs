//! Least privilege, derived from what the functions do: every function is built in-process the
//! way its `main.rs` builds it in Lambda (`Platform::Lambda`, secrets from SSM through
//! `TGLINK_SSM_PREFIX`, DynamoDB and KMS), the events of `tests/events/` are replayed through
//! it (`lambda_events::run_scenario`), and every AWS call it makes goes through a recording
//! proxy to moto. Then each function's role in `template.yaml` must allow every recorded
//! request (action, resource, the item's partition key, KMS encryption context) and grant
//! nothing that was not used.
//!
//! Containment: the isolation matrices (role × item prefix × action, role × SSM name, role ×
//! KMS use) are evaluated on `template.yaml` itself, so that one compromised function can
//! touch only the items and secrets it needs (a webhook cannot write a user's vault item nor
//! read the JWT secret).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;
use tglink_shared::config::SECRET_VARS;
use tglink_tests::{
    aws_recorder::{AuthzRequest, LEADING_KEYS, key_arn, parameter_arn, table_arn},
    cloud::CloudLike,
    functions::{self, FUNCTIONS},
    lambda_events::{InProcess, Session, run_scenario},
    template::{Deployment, Template, TemplateFunction, glob_match},
};

/// Every kind of item of the table, by the `pk` prefix IAM sees (`dynamodb:LeadingKeys`; the
/// table of `shared/src/store/dynamodb/keys.rs`). No prefix is a prefix of another, so a grant
/// of `<prefix>*` never reaches another kind ([`item_prefixes_are_disjoint`]).
const ITEM_PREFIXES: &[(&str, &str)] = &[
    ("link by Telegram user", "TGUSER#"),
    ("link by app user", "USER#"),
    ("block", "TGBLOCK#"),
    ("Telegram update claim", "CLAIM#update#"),
    ("connect token", "CONNECT#"),
    ("vault: credentials and worker tokens", "VAULT#"),
    ("registration pointer", "REGISTRATION#"),
    ("registration state", "REGISTRATIONID#"),
    ("TOTP verification state", "TOTP#"),
    (
        "sign-in record: sessions, initData claims, link and block mirrors",
        "TGSIGNIN#",
    ),
    ("signing keys", "SIGNKEY#"),
    ("notify idempotency claim", "CLAIM#notify#"),
    ("notify token bucket", "RATE#"),
    ("pending OpenID authorization request", "AUTHREQ#"),
    ("tglink authorization code", "AUTHCODE#"),
];

/// What each function may do to each kind of item: `R` read only (`GetItem`,
/// `ConditionCheckItem`, `Query`), `W` read and write. Every other (function, prefix) pair is
/// denied for every action.
const ACCESS: &[(&str, &[(&str, Access)])] = &[
    ("connect-link", &[("CONNECT#", W)]),
    (
        "webhook",
        &[
            ("CONNECT#", W),
            ("TGUSER#", W),
            ("USER#", W),
            ("TGBLOCK#", R),
            ("CLAIM#update#", W),
            ("TGSIGNIN#", W),
        ],
    ),
    (
        "registration",
        &[("REGISTRATION#", W), ("REGISTRATIONID#", W), ("TOTP#", W)],
    ),
    ("settings", &[("VAULT#", W)]),
    ("worker-credentials", &[("VAULT#", W)]),
    ("initdata-verify", &[("TGSIGNIN#", R)]),
    (
        "link",
        &[
            ("TGUSER#", W),
            ("USER#", W),
            ("TGBLOCK#", W),
            ("TGSIGNIN#", W),
            ("SIGNKEY#", R),
        ],
    ),
    (
        "oauth",
        &[("TGSIGNIN#", W), ("SIGNKEY#", W), ("AUTHCODE#", W)],
    ),
    ("authorize", &[("AUTHREQ#", W), ("AUTHCODE#", W)]),
    ("oidc", &[("SIGNKEY#", R)]),
    ("signing-keys", &[("SIGNKEY#", W)]),
    (
        "notify",
        &[
            ("TGUSER#", W),
            ("USER#", W),
            ("CLAIM#notify#", W),
            ("RATE#", W),
        ],
    ),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    R,
    W,
}
use Access::{R, W};

const READ_ACTIONS: &[&str] = &[
    "dynamodb:GetItem",
    "dynamodb:ConditionCheckItem",
    "dynamodb:Query",
];
const WRITE_ACTIONS: &[&str] = &[
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:DeleteItem",
];
/// Never granted to any function, on any item.
const TABLE_ACTIONS: &[&str] = &[
    "dynamodb:Scan",
    "dynamodb:BatchGetItem",
    "dynamodb:BatchWriteItem",
    "dynamodb:DeleteTable",
    "dynamodb:UpdateTable",
];

/// What each function may do with the sealing key: (action, purpose).
const KMS_USE: &[(&str, &[(&str, &str)])] = &[
    (
        "registration",
        &[
            ("kms:GenerateDataKey", "registration"),
            ("kms:Decrypt", "registration"),
        ],
    ),
    (
        "settings",
        &[
            ("kms:GenerateDataKey", "credentials"),
            ("kms:Decrypt", "credentials"),
        ],
    ),
    ("worker-credentials", &[("kms:Decrypt", "credentials")]),
    (
        "oauth",
        &[
            ("kms:Decrypt", "signing-key"),
            ("kms:GenerateDataKey", "signing-key"),
        ],
    ),
    ("signing-keys", &[("kms:GenerateDataKey", "signing-key")]),
];
const KMS_ACTIONS: &[&str] = &[
    "kms:Decrypt",
    "kms:Encrypt",
    "kms:GenerateDataKey",
    "kms:GenerateDataKeyWithoutPlaintext",
    "kms:ReEncryptFrom",
    "kms:ReEncryptTo",
    "kms:PutKeyPolicy",
    "kms:ScheduleKeyDeletion",
];
const PURPOSES: &[&str] = &["credentials", "registration", "signing-key"];
/// The actions that use the key's material.
const USE_ACTIONS: &[&str] = &[
    "kms:Decrypt",
    "kms:Encrypt",
    "kms:GenerateDataKey",
    "kms:GenerateDataKeyPair",
    "kms:GenerateDataKeyWithoutPlaintext",
    "kms:ReEncryptFrom",
    "kms:ReEncryptTo",
    "kms:CreateGrant",
];

fn deployment() -> Deployment {
    Deployment {
        stack: "s".into(),
        stage: "prod".into(),
        table: "t".into(),
        key_arn: key_arn("k"),
    }
}

fn item_request(action: &str, pk: &str) -> AuthzRequest {
    AuthzRequest {
        action: action.into(),
        resource: table_arn("t"),
        context: BTreeMap::from([(LEADING_KEYS.to_owned(), pk.to_owned())]),
    }
}

fn access_of(function: &str) -> &'static [(&'static str, Access)] {
    ACCESS
        .iter()
        .find(|(f, _)| *f == function)
        .unwrap_or_else(|| panic!("ACCESS has no row for {function}"))
        .1
}

/// The prefix of `pk` in [`ITEM_PREFIXES`]: exactly one must match.
fn prefix_of(pk: &str) -> &'static str {
    let matching: Vec<&str> = ITEM_PREFIXES
        .iter()
        .map(|(_, p)| *p)
        .filter(|p| pk.starts_with(p))
        .collect();
    match matching.as_slice() {
        [one] => one,
        _ => panic!("the key {pk} is of no kind of ITEM_PREFIXES (or of several): {matching:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn template_policies_allow_exactly_what_the_functions_do() {
    let mut cloud = CloudLike::start().await;
    let mut invoker = InProcess::new(cloud.env.clone());
    let mut session = Session::new(&mut invoker, &cloud.recorder);
    run_scenario(&mut session).await;

    // The scenario covers every route of every function.
    for function in FUNCTIONS {
        for route in function.routes {
            let slug = functions::event_slug(route);
            assert!(
                session
                    .invoked
                    .contains(&(function.name.to_owned(), slug.clone())),
                "run_scenario never invokes {} {} (tests/events/{}/{slug}.json)",
                route.method,
                route.pattern,
                function.name
            );
        }
    }

    let template = Template::load();
    for function in FUNCTIONS {
        let observed = session
            .observed
            .get(function.name)
            .cloned()
            .unwrap_or_default();
        // A function that reads secrets reads them at its cold start; one that reads none
        // (oidc) never calls SSM.
        assert_eq!(
            observed.iter().any(|r| r.action == "ssm:GetParameters"),
            !(function.secrets)().is_empty(),
            "{} reads its secrets (and only then calls SSM) at its cold start: {observed:?}",
            function.name
        );
        // Every item it touched is of a known kind, one its row of ACCESS allows.
        let access = access_of(function.name);
        for r in observed
            .iter()
            .filter(|r| r.action.starts_with("dynamodb:"))
        {
            let Some(pk) = r.context.get(LEADING_KEYS) else {
                continue; // reported by check_least_privilege
            };
            let prefix = prefix_of(pk);
            let granted = access.iter().find(|(p, _)| *p == prefix);
            assert!(
                granted.is_some_and(|(_, a)| *a == W || READ_ACTIONS.contains(&r.action.as_str())),
                "{} did {} on {pk}, which ACCESS does not give it",
                function.name,
                r.action
            );
        }
    }
    let problems = template.check_scenario(
        FUNCTIONS.iter().map(|f| f.name),
        &session.observed,
        &cloud.deployment,
    );
    assert!(
        problems.is_empty(),
        "IAM problems:\n{}",
        problems.join("\n")
    );
    cloud.recorder.stop().await;
}

/// The check can fail: a policy missing an action the function uses, one granting an action it
/// never uses, and a KMS call with another purpose are all reported.
#[test]
fn the_check_reports_missing_and_unused_actions() {
    use tglink_tests::aws_recorder::{AuthzRequest, key_arn, table_arn};
    let template = Template::load();
    let deployment = tglink_tests::template::Deployment {
        stack: "s".into(),
        stage: "prod".into(),
        table: "t".into(),
        key_arn: key_arn("k"),
    };
    let request = |action: &str, resource: String| AuthzRequest {
        action: action.into(),
        resource,
        context: Default::default(),
    };
    let put_on = |pk: &str| item_request("dynamodb:PutItem", pk);
    let ssm = request(
        "ssm:GetParameters",
        tglink_tests::aws_recorder::parameter_arn("/tglink/prod/APP_JWT_SECRET"),
    );
    let public_key = request(
        "ssm:GetParameters",
        tglink_tests::aws_recorder::parameter_arn("/tglink/prod/APP_JWT_PUBLIC_KEY"),
    );
    let put = put_on("CONNECT#h");
    let connect_link = template.function("connect-link");
    assert_eq!(
        connect_link
            .check_least_privilege(&[ssm.clone(), public_key.clone(), put.clone()], &deployment),
        Vec::<String>::new()
    );
    let problems = connect_link.check_least_privilege(&[ssm.clone(), put.clone()], &deployment);
    assert!(
        problems
            .iter()
            .any(|p| p.contains("APP_JWT_PUBLIC_KEY") && p.contains("never read")),
        "a parameter granted and never read is reported: {problems:?}"
    );
    let problems = connect_link.check_least_privilege(
        &[
            ssm.clone(),
            put.clone(),
            item_request("dynamodb:GetItem", "CONNECT#h"),
        ],
        &deployment,
    );
    assert!(
        problems.iter().any(|p| p.contains("dynamodb:GetItem")),
        "{problems:?}"
    );
    let problems = connect_link.check_least_privilege(
        &[ssm.clone(), put.clone(), put_on("VAULT#victim")],
        &deployment,
    );
    assert!(
        problems
            .iter()
            .any(|p| p.contains("VAULT#victim") && p.contains("not allowed")),
        "a write outside the role's prefixes is reported: {problems:?}"
    );
    let problems = connect_link.check_least_privilege(
        &[ssm.clone(), request("dynamodb:PutItem", table_arn("t"))],
        &deployment,
    );
    assert!(
        problems.iter().any(|p| p.contains("without a leading key")),
        "{problems:?}"
    );
    let problems = connect_link.check_least_privilege(std::slice::from_ref(&ssm), &deployment);
    assert!(
        problems.iter().any(|p| p.contains("never used")),
        "{problems:?}"
    );
    let problems = connect_link.check_least_privilege(std::slice::from_ref(&put), &deployment);
    assert!(
        problems.iter().any(|p| p.contains("never used")),
        "{problems:?}"
    );
    let other_stage = request(
        "ssm:GetParameters",
        tglink_tests::aws_recorder::parameter_arn("/tglink/dev/APP_JWT_SECRET"),
    );
    let problems =
        connect_link.check_least_privilege(&[ssm.clone(), put, other_stage], &deployment);
    assert!(
        problems.iter().any(|p| p.contains("/tglink/dev/")),
        "{problems:?}"
    );

    let worker = template.function("worker-credentials");
    let mut decrypt = request("kms:Decrypt", key_arn("k"));
    decrypt
        .context
        .insert("kms:EncryptionContext:service".into(), "tglink".into());
    decrypt.context.insert(
        "kms:EncryptionContext:purpose".into(),
        "registration".into(),
    );
    let problems = worker.check_least_privilege(&[decrypt], &deployment);
    assert!(
        problems
            .iter()
            .any(|p| p.contains("kms:Decrypt") && p.contains("not allowed")),
        "{problems:?}"
    );
}

/// No kind of item's prefix starts another's: `StringLike` `<prefix>*` matches one kind only.
#[test]
fn item_prefixes_are_disjoint() {
    for (a, p) in ITEM_PREFIXES {
        for (b, q) in ITEM_PREFIXES {
            assert!(
                a == b || !glob_match(&format!("{p}*"), q),
                "{p}* ({a}) also matches {q} ({b})"
            );
        }
    }
}

/// [`ITEM_PREFIXES`] is the key table of `shared/src/store/dynamodb/keys.rs`: every `pk` there
/// (its literal part, up to the first `<…>`; of a fixed pk, up to its last `#`) is one of them, or is split by kind into several
/// (claims), and every one of them is of a `pk` there.
#[test]
fn item_prefixes_are_the_key_table() {
    let path = tglink_tests::workspace_root().join("shared/src/store/dynamodb/keys.rs");
    let text = std::fs::read_to_string(&path).expect("read keys.rs");
    let table: BTreeSet<String> = text
        .lines()
        .filter_map(|l| l.strip_prefix("//! | "))
        .filter_map(|row| row.split(" | ").nth(1))
        .filter_map(|pk| pk.strip_prefix('`'))
        // `PREFIX#<id>`, or a literal `PREFIX#name` (one partition): up to the last `#`.
        .filter_map(|pk| match pk.split_once('<') {
            Some((literal, _)) => Some(literal.to_owned()),
            None => pk
                .split('`')
                .next()
                .and_then(|pk| pk.rfind('#').map(|i| pk[..=i].to_owned())),
        })
        .collect();
    assert!(table.len() >= 8, "keys.rs documents its keys: {table:?}");
    for pk in &table {
        assert!(
            ITEM_PREFIXES
                .iter()
                .any(|(_, p)| p.starts_with(pk.as_str())),
            "keys.rs has the pk prefix {pk}, which ITEM_PREFIXES lacks"
        );
    }
    for (kind, p) in ITEM_PREFIXES {
        assert!(
            table.iter().any(|pk| p.starts_with(pk.as_str())),
            "ITEM_PREFIXES has {p} ({kind}), which is no pk of keys.rs: {table:?}"
        );
    }
}

/// Role × item prefix × action: every function may touch only the kinds of item of its row of
/// [`ACCESS`] (writes only where it says `W`), evaluated on `template.yaml`'s policies; and
/// every access of its row is granted (so the table cannot go stale).
#[test]
fn each_role_touches_only_its_own_kinds_of_item() {
    let template = Template::load();
    let deployment = deployment();
    let mut problems = Vec::new();
    assert_eq!(ACCESS.len(), FUNCTIONS.len(), "one ACCESS row per function");
    for function in FUNCTIONS {
        let f = template.function(function.name);
        let access = access_of(function.name);
        for (kind, prefix) in ITEM_PREFIXES {
            let pk = format!("{prefix}42");
            let given = access.iter().find(|(p, _)| p == prefix).map(|(_, a)| *a);
            for action in READ_ACTIONS
                .iter()
                .chain(WRITE_ACTIONS)
                .chain(TABLE_ACTIONS)
            {
                let allowed = f.allows(&item_request(action, &pk), &deployment);
                let may = match given {
                    _ if TABLE_ACTIONS.contains(action) => false,
                    None => false,
                    Some(R) => READ_ACTIONS.contains(action),
                    Some(W) => true,
                };
                if allowed && !may {
                    problems.push(format!(
                        "{}: {action} on {pk} ({kind}) is allowed, and must be denied",
                        f.role_id
                    ));
                }
            }
            let granted_any = |actions: &[&str]| {
                actions
                    .iter()
                    .any(|a| f.allows(&item_request(a, &pk), &deployment))
            };
            match given {
                Some(W) if !granted_any(WRITE_ACTIONS) => problems.push(format!(
                    "{}: ACCESS gives {} writes on {prefix}, the template none",
                    f.role_id, function.name
                )),
                Some(R) if !granted_any(READ_ACTIONS) => problems.push(format!(
                    "{}: ACCESS gives {} reads on {prefix}, the template none",
                    f.role_id, function.name
                )),
                _ => {}
            }
        }
        // A request that names no partition (Scan) or another table is denied.
        let mut scan = item_request("dynamodb:Scan", "x");
        scan.context.clear();
        let mut other_table = item_request("dynamodb:GetItem", "CONNECT#1");
        other_table.resource = table_arn("other");
        for r in [scan, other_table] {
            if f.allows(&r, &deployment) {
                problems.push(format!("{}: allows {r:?}", f.role_id));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "isolation problems:\n{}",
        problems.join("\n")
    );
}

/// The example: the webhook cannot add a worker-token hash to a user's vault item, nor
/// read it, nor write a block; only settings and worker-credentials touch the vault.
#[test]
fn only_the_vault_functions_touch_the_vault() {
    let template = Template::load();
    let deployment = deployment();
    let webhook = template.function("webhook");
    for action in [
        "dynamodb:UpdateItem",
        "dynamodb:GetItem",
        "dynamodb:PutItem",
    ] {
        assert!(
            !webhook.allows(&item_request(action, "VAULT#victim"), &deployment),
            "webhook may {action} the vault item"
        );
    }
    assert!(!webhook.allows(
        &item_request("dynamodb:DeleteItem", "TGBLOCK#42"),
        &deployment
    ));
    let touching: BTreeSet<&str> = FUNCTIONS
        .iter()
        .filter(|f| {
            let f = template.function(f.name);
            READ_ACTIONS
                .iter()
                .chain(WRITE_ACTIONS)
                .any(|a| f.allows(&item_request(a, "VAULT#victim"), &deployment))
        })
        .map(|f| f.name)
        .collect();
    assert_eq!(touching, BTreeSet::from(["settings", "worker-credentials"]));
}

/// Role × SSM name: each role may read exactly the parameters of its function's
/// `Function::secrets` under its stage, nothing else (the webhook cannot read the JWT secret).
#[test]
fn each_role_reads_only_its_own_secrets() {
    let template = Template::load();
    let deployment = deployment();
    let mut problems = Vec::new();
    for function in FUNCTIONS {
        let f = template.function(function.name);
        let secrets = (function.secrets)();
        assert!(
            secrets.iter().all(|s| SECRET_VARS.contains(s)),
            "{}: {secrets:?} must be names of SECRET_VARS",
            function.name
        );
        let get = |name: &str| AuthzRequest {
            action: "ssm:GetParameters".into(),
            resource: parameter_arn(&format!("/tglink/prod/{name}")),
            context: BTreeMap::new(),
        };
        for name in SECRET_VARS.iter().chain(&["OTHER_PARAMETER"]) {
            let allowed = f.allows(&get(name), &deployment);
            let may = secrets.contains(name);
            if allowed != may {
                problems.push(format!(
                    "{}: ssm:GetParameters on /tglink/prod/{name} is {}, and must be {}",
                    f.role_id,
                    if allowed { "allowed" } else { "denied" },
                    if may { "allowed" } else { "denied" },
                ));
            }
        }
        for action in [
            "ssm:GetParameter",
            "ssm:GetParametersByPath",
            "ssm:PutParameter",
        ] {
            let mut r = get(secrets.first().copied().unwrap_or("APP_JWT_SECRET"));
            r.action = action.into();
            if f.allows(&r, &deployment) {
                problems.push(format!("{}: allows {action}", f.role_id));
            }
        }
    }
    let webhook = template.function("webhook");
    assert!(!webhook.allows(
        &AuthzRequest {
            action: "ssm:GetParameters".into(),
            resource: parameter_arn("/tglink/prod/APP_JWT_SECRET"),
            context: BTreeMap::new(),
        },
        &deployment
    ));
    assert!(
        problems.is_empty(),
        "secret problems:\n{}",
        problems.join("\n")
    );
}

/// Role × KMS use: the key policy names the roles that use the key, each with its actions and
/// purpose only; no role may administer the key; the administrator is a parameter and gets no
/// use of the key; nothing grants `kms:*`.
#[test]
fn the_key_policy_names_its_users_and_an_administrator() {
    let template = Template::load();
    let deployment = deployment();
    let mut problems = Vec::new();
    for function in FUNCTIONS {
        let f = template.function(function.name);
        let uses = KMS_USE
            .iter()
            .find(|(n, _)| *n == function.name)
            .map_or(&[][..], |(_, u)| *u);
        for action in KMS_ACTIONS {
            for purpose in PURPOSES {
                let r = AuthzRequest {
                    action: (*action).into(),
                    resource: key_arn("k"),
                    context: BTreeMap::from([
                        (
                            "kms:EncryptionContext:service".to_owned(),
                            "tglink".to_owned(),
                        ),
                        (
                            "kms:EncryptionContext:purpose".to_owned(),
                            (*purpose).to_owned(),
                        ),
                    ]),
                };
                let allowed = f.allows(&r, &deployment);
                let may = uses.contains(&(*action, *purpose));
                if allowed != may {
                    problems.push(format!(
                        "{}: {action} with purpose {purpose} is {}",
                        f.role_id,
                        if allowed { "allowed" } else { "denied" }
                    ));
                }
            }
        }
    }
    let key = template.resource("SealingKey");
    let roles: BTreeSet<String> = FUNCTIONS
        .iter()
        .map(|f| template.function(f.name).role_id)
        .collect();
    for s in key["Properties"]["KeyPolicy"]["Statement"]
        .as_array()
        .expect("statements")
    {
        let actions: Vec<&str> = match &s["Action"] {
            Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
            other => vec![other.as_str().expect("action")],
        };
        if actions.contains(&"kms:*") {
            problems.push(format!("SealingKey: {} grants kms:*", s["Sid"]));
        }
        let principal = &s["Principal"]["AWS"];
        let is_role = principal["Fn::GetAtt"][0]
            .as_str()
            .is_some_and(|r| roles.contains(r));
        if is_role {
            continue;
        }
        if !principal.to_string().contains("\"KmsAdminPrincipal\"") {
            problems.push(format!(
                "SealingKey: {} names {principal}, neither a function role nor KmsAdminPrincipal",
                s["Sid"]
            ));
        }
        for a in &actions {
            if USE_ACTIONS.iter().any(|u| glob_match(a, u)) {
                problems.push(format!(
                    "SealingKey: the administrator may use the key ({a})"
                ));
            }
        }
    }
    assert!(
        template.doc["Parameters"]["KmsAdminPrincipal"].is_object(),
        "template.yaml has a KmsAdminPrincipal parameter"
    );
    assert!(
        problems.is_empty(),
        "key policy problems:\n{}",
        problems.join("\n")
    );
}

/// The least-privilege check holds per (action, key prefix) and per parameter: a grant of a
/// prefix or a parameter never used is reported.
#[test]
fn unused_prefixes_are_reported() {
    let template = Template::load();
    let deployment = deployment();
    let webhook: TemplateFunction = template.function("webhook");
    let ssm = AuthzRequest {
        action: "ssm:GetParameters".into(),
        resource: parameter_arn("/tglink/prod/TELEGRAM_WEBHOOK_SECRET"),
        context: BTreeMap::new(),
    };
    let problems = webhook.check_least_privilege(
        &[ssm, item_request("dynamodb:GetItem", "CONNECT#1")],
        &deployment,
    );
    assert!(
        problems
            .iter()
            .any(|p| p.contains("dynamodb:GetItem on TGUSER#*") && p.contains("never used")),
        "{problems:?}"
    );
}
