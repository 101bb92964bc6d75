//! `template.yaml` against the code: cfn-lint finds nothing, every crate of `functions/` is one
//! function resource whose HttpApi events are exactly its `ROUTES`, every function block has
//! the same shape, the stateful resources are configured as the design says, no secret is in
//! the template, and every route has a Lambda event in `tests/events/` that is usable as it is.

use std::collections::BTreeSet;

use serde_json::{Value, json};
use tglink_shared::{
    auth::JwtVerifier,
    config::{JwtConfig, MapEnv, SECRET_VARS},
    telegram::miniapp::{MiniAppConfig, RawInitData},
    time::UnixTime,
};
use tglink_tests::{
    functions::{FUNCTIONS, crate_dirs, event_slug, route_key},
    lambda_events::{DEV_ADMIN_JWT, DEV_USER, dev_env, event_path, events_dir, load_event},
    template::Template,
    workspace_root,
};

#[test]
fn cfn_lint_finds_nothing() {
    let root = workspace_root();
    let lint = root.join(".venv/bin/cfn-lint");
    assert!(lint.exists(), "{} missing: run make test", lint.display());
    // Informational findings too (`-c I`): the template is to stay entirely clean.
    let out = std::process::Command::new(lint)
        .args(["--include-checks", "I", "--"])
        .arg(root.join("template.yaml"))
        .output()
        .expect("run cfn-lint");
    assert!(
        out.status.success() && out.stdout.is_empty(),
        "cfn-lint template.yaml:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn every_crate_is_a_function_with_exactly_its_routes() {
    let listed: Vec<&str> = {
        let mut v: Vec<&str> = FUNCTIONS.iter().map(|f| f.name).collect();
        v.sort();
        v
    };
    assert_eq!(
        crate_dirs(),
        listed,
        "every directory of functions/ must be listed in tests/src/functions.rs"
    );
    let template = Template::load();
    let in_template: Vec<String> = {
        let mut v: Vec<String> = template.functions().into_iter().map(|f| f.name).collect();
        v.sort();
        v
    };
    assert_eq!(
        in_template,
        crate_dirs(),
        "one AWS::Serverless::Function per crate of functions/ (CodeUri functions/<crate>)"
    );
    for function in FUNCTIONS {
        let expected: BTreeSet<(String, String)> = function.routes.iter().map(route_key).collect();
        let t = template.function(function.name);
        assert_eq!(
            t.routes, expected,
            "{}: HttpApi events of {} vs its ROUTES",
            function.name, t.logical_id
        );
    }
}

#[test]
fn function_blocks_are_uniform() {
    let template = Template::load();
    let parameter = &template.doc["Parameters"]["Architecture"];
    assert_eq!(parameter["Default"], "arm64");
    assert_eq!(parameter["AllowedValues"], json!(["arm64", "x86_64"]));
    for f in template.functions() {
        let id = &f.logical_id;
        let p = &f.resource["Properties"];
        assert_eq!(p["Runtime"], "provided.al2023", "{id}");
        assert_eq!(p["Handler"], "bootstrap", "{id}");
        assert_eq!(p["Architectures"], json!([{"Ref": "Architecture"}]), "{id}");
        assert_eq!(
            f.resource["Metadata"]["BuildMethod"], "rust-cargolambda",
            "{id}"
        );
        assert_eq!(
            f.resource["Metadata"]["BuildProperties"]["Binary"], f.name,
            "{id}"
        );
        assert_eq!(
            p["FunctionName"],
            json!({"Fn::Sub": format!("${{AWS::StackName}}-{}", f.name)}),
            "{id}"
        );
        // Its own log group, with retention, named as Lambda would name it.
        let logs = template.resource(&f.log_group_id());
        assert_eq!(logs["Type"], "AWS::Logs::LogGroup", "{id}");
        assert_eq!(
            logs["Properties"]["LogGroupName"],
            json!({"Fn::Sub": format!("/aws/lambda/${{AWS::StackName}}-{}", f.name)}),
            "{id}"
        );
        assert_eq!(
            logs["Properties"]["RetentionInDays"],
            json!({"Ref": "LogRetentionInDays"}),
            "{id}"
        );
        // Its own role, trusted by Lambda only, with a Secrets statement on its own parameters.
        let role = template.resource(&f.role_id);
        assert_eq!(
            role["Properties"]["AssumeRolePolicyDocument"]["Statement"],
            json!([{
                "Effect": "Allow",
                "Principal": {"Service": "lambda.amazonaws.com"},
                "Action": "sts:AssumeRole",
            }]),
            "{id}"
        );
        let secrets: Vec<_> = f
            .statements
            .iter()
            .filter(|s| s.actions.iter().any(|a| a.starts_with("ssm:")))
            .collect();
        // One parameter ARN per secret the function reads (`Function::secrets`), no wildcard;
        // no SSM statement for a function that reads none.
        let names = (tglink_tests::functions::function(&f.name).secrets)();
        if names.is_empty() {
            assert!(
                secrets.is_empty(),
                "{id}: reads no secret, so no SSM statement"
            );
        } else {
            assert_eq!(secrets.len(), 1, "{id}: one SSM statement");
            assert_eq!(secrets[0].actions, ["ssm:GetParameters"], "{id}");
            let expected: Vec<_> = names
            .iter()
            .map(|name| json!({"Fn::Sub": format!("arn:${{AWS::Partition}}:ssm:${{AWS::Region}}:${{AWS::AccountId}}:parameter/tglink/${{Stage}}/{name}")}))
            .collect();
            assert_eq!(secrets[0].resources, expected, "{id}");
        }
        for s in &f.statements {
            if s.actions.iter().any(|a| a.starts_with("kms:")) {
                let c = &s
                    .condition
                    .as_ref()
                    .expect("KMS statements are conditioned")["StringEquals"];
                assert_eq!(c["kms:EncryptionContext:service"], "tglink", "{id}");
                assert!(c["kms:EncryptionContext:purpose"].is_string(), "{id}");
                assert_eq!(s.resources, [json!({"Fn::GetAtt": ["SealingKey", "Arn"]})]);
            }
            if s.actions.iter().any(|a| a.starts_with("dynamodb:")) {
                assert_eq!(
                    s.resources,
                    [json!({"Fn::GetAtt": ["Table", "Arn"]})],
                    "{id}"
                );
            }
        }
    }
}

#[test]
fn stateful_resources_are_configured() {
    let template = Template::load();
    let table = template.resource("Table");
    assert_eq!(table["Type"], "AWS::DynamoDB::Table");
    assert_eq!(table["DeletionPolicy"], "Retain");
    let t = &table["Properties"];
    assert_eq!(t["BillingMode"], "PAY_PER_REQUEST");
    assert_eq!(
        t["KeySchema"],
        json!([{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}])
    );
    assert_eq!(
        t["AttributeDefinitions"],
        json!([{"AttributeName": "pk", "AttributeType": "S"}, {"AttributeName": "sk", "AttributeType": "S"}])
    );
    assert_eq!(
        t["TimeToLiveSpecification"],
        json!({"AttributeName": "expires_at", "Enabled": true})
    );
    assert_eq!(
        t["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"],
        true
    );
    assert_eq!(t["SSESpecification"]["SSEEnabled"], true);

    let key = template.resource("SealingKey");
    assert_eq!(key["Type"], "AWS::KMS::Key");
    assert_eq!(key["DeletionPolicy"], "Retain");
    assert_eq!(key["Properties"]["EnableKeyRotation"], true);
    assert_eq!(key["Properties"]["KeySpec"], "SYMMETRIC_DEFAULT");

    for (id, group) in template.of_type("AWS::Logs::LogGroup") {
        assert!(
            group["Properties"]["RetentionInDays"].is_object(),
            "{id}: retention"
        );
    }
    let outputs = &template.doc["Outputs"];
    assert!(outputs["ApiUrl"]["Value"]["Fn::Sub"].is_string());
    let webhook = outputs["WebhookUrl"]["Value"]["Fn::Sub"].as_str().unwrap();
    let route = webhook::ROUTES[0].pattern;
    assert!(webhook.ends_with(route), "WebhookUrl ends with {route}");
}

/// Service secrets never appear in the template: no parameter carries one, no environment
/// variable is one, and the functions get the SSM prefix instead.
#[test]
fn no_secret_in_the_template() {
    let template = Template::load();
    let globals = &template.doc["Globals"]["Function"]["Environment"]["Variables"];
    assert_eq!(
        globals["TGLINK_SSM_PREFIX"],
        json!({"Fn::Sub": "/tglink/${Stage}/"})
    );
    let mut envs = vec![globals.clone()];
    for f in template.functions() {
        envs.push(f.resource["Properties"]["Environment"]["Variables"].clone());
    }
    for env in envs {
        for name in env.as_object().into_iter().flatten().map(|(k, _)| k) {
            assert!(
                !SECRET_VARS.contains(&name.as_str()),
                "{name} is a service secret: it comes from SSM, never from the template"
            );
        }
    }
    let parameters = template.doc["Parameters"].as_object().unwrap();
    for (name, _) in parameters {
        let lower = name.to_ascii_lowercase();
        for word in ["secret", "token", "hash", "password", "key"] {
            assert!(
                !lower.contains(word),
                "parameter {name} looks like a secret: secrets are SSM SecureStrings"
            );
        }
    }
}

/// One event per route in `tests/events/<function>/<method>-<path>.json`, and nothing else;
/// each is an HTTP API v2 event for its route that `lambda_http` accepts, with a JWT (where
/// one is sent: the dev user's, the admin JWT for admin routes) and initData (where sent) that
/// verify under `tests/events/dev.env`.
#[test]
fn every_route_has_a_usable_event() {
    let env = dev_env()
        .into_iter()
        .fold(MapEnv::new(), |env, (k, v)| env.with(&k, v));
    let verifier = JwtVerifier::new(&JwtConfig::from_env(&env).expect("dev.env JWT config"))
        .expect("verifier");
    let miniapp = MiniAppConfig::from_env(&env).expect("dev.env Mini App config");
    let mut expected_files = BTreeSet::new();
    for function in FUNCTIONS {
        for route in function.routes {
            let slug = event_slug(route);
            let path = event_path(function.name, &slug);
            assert!(path.exists(), "missing event {}", path.display());
            expected_files.insert(path.clone());
            let event = load_event(function.name, &slug);
            let at = path.display().to_string();
            let route_key = format!("{} {}", route.method, route.pattern);
            assert_eq!(event["version"], "2.0", "{at}");
            assert_eq!(event["routeKey"], route_key, "{at}");
            assert_eq!(event["requestContext"]["routeKey"], route_key, "{at}");
            assert_eq!(event["requestContext"]["stage"], "$default", "{at}");
            assert_eq!(
                event["requestContext"]["http"]["method"], route.method,
                "{at}"
            );
            let raw_path = event["rawPath"].as_str().expect("rawPath");
            assert_eq!(event["requestContext"]["http"]["path"], raw_path, "{at}");
            let params = route
                .params(raw_path)
                .unwrap_or_else(|| panic!("{at}: rawPath {raw_path} is not {}", route.pattern));
            let expected_params: serde_json::Map<String, Value> = params
                .iter()
                .map(|(k, v)| ((*k).to_owned(), json!(v)))
                .collect();
            if expected_params.is_empty() {
                assert!(
                    event["pathParameters"].is_null(),
                    "{at}: no path parameters"
                );
            } else {
                assert_eq!(
                    event["pathParameters"],
                    Value::Object(expected_params),
                    "{at}"
                );
            }
            if let Some(body) = event["body"].as_str()
                && event["headers"]["content-type"] == "application/x-www-form-urlencoded"
            {
                // An OAuth form: its initData (a token exchange's subject token) verifies.
                for (name, value) in form_urlencoded::parse(body.as_bytes()) {
                    if name == "subject_token" {
                        miniapp
                            .verify(&RawInitData::new(value.as_ref()), UnixTime::now())
                            .unwrap_or_else(|e| panic!("{at}: the initData is refused: {e}"));
                    }
                }
            } else if let Some(body) = event["body"].as_str() {
                let body: Value = serde_json::from_str(body)
                    .unwrap_or_else(|e| panic!("{at}: the body is not JSON: {e}"));
                assert_eq!(event["headers"]["content-type"], "application/json", "{at}");
                // Signed with dev.env's bot token, and young enough for its max age.
                if let Some(init_data) = body["init_data"].as_str() {
                    miniapp
                        .verify(&RawInitData::new(init_data), UnixTime::now())
                        .unwrap_or_else(|e| panic!("{at}: the initData is refused: {e}"));
                }
            }
            let request = lambda_http::request::from_str(&event.to_string())
                .unwrap_or_else(|e| panic!("{at}: lambda_http rejects it: {e}"));
            assert_eq!(request.method().as_str(), route.method, "{at}");
            assert_eq!(request.uri().path(), raw_path, "{at}");
            if let Some(auth) = event["headers"]["authorization"].as_str() {
                let jwt = auth.strip_prefix("Bearer ").expect("a bearer token");
                let user = verifier
                    .verify(jwt)
                    .unwrap_or_else(|e| panic!("{at}: the JWT does not verify: {e}"));
                if route.pattern.starts_with("/api/admin/") {
                    assert_eq!(jwt, DEV_ADMIN_JWT, "{at}: admin routes get the admin JWT");
                } else if route.pattern == "/api/telegram/notify" {
                    // A host backend's JWT, with the notify role.
                    assert!(
                        user.roles.iter().any(|r| r == notify::DEFAULT_NOTIFY_ROLE),
                        "{at}: notify gets a JWT with the notify role"
                    );
                } else {
                    assert_eq!(user.user_id.as_str(), DEV_USER, "{at}");
                }
            }
        }
    }
    let mut found = BTreeSet::new();
    for dir in std::fs::read_dir(events_dir())
        .unwrap()
        .filter_map(Result::ok)
    {
        if dir.path().is_dir() {
            for file in std::fs::read_dir(dir.path())
                .unwrap()
                .filter_map(Result::ok)
            {
                found.insert(file.path());
            }
        }
    }
    assert_eq!(
        found.difference(&expected_files).collect::<Vec<_>>(),
        Vec::<&std::path::PathBuf>::new(),
        "event files that belong to no route (names: functions::event_slug)"
    );
}

/// The admin JWT `docs/deploy.md` offers for events of admin routes verifies under `dev.env`.
#[test]
fn the_documented_admin_jwt_is_valid() {
    let env = dev_env()
        .into_iter()
        .fold(MapEnv::new(), |env, (k, v)| env.with(&k, v));
    let verifier = JwtVerifier::new(&JwtConfig::from_env(&env).unwrap()).unwrap();
    let admin = verifier.verify(DEV_ADMIN_JWT).expect("valid");
    assert!(admin.is_admin());
    assert_eq!(admin.user_id.as_str(), "dev-admin");
    let doc = std::fs::read_to_string(workspace_root().join("docs/deploy.md")).unwrap();
    assert!(doc.contains(DEV_ADMIN_JWT), "docs/deploy.md shows it");
}

/// `infra/ssm_secrets.py` writes exactly the secrets the functions read from SSM.
#[test]
fn the_secrets_script_knows_every_secret() {
    let out = std::process::Command::new(tglink_tests::cloud::venv_python())
        .arg(workspace_root().join("infra/ssm_secrets.py"))
        .arg("names")
        .output()
        .expect("run ssm_secrets.py names");
    assert!(out.status.success());
    let names: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(names, SECRET_VARS);
}

/// CORS in the cloud is API Gateway's `CorsConfiguration` from the `CorsOrigins` parameter —
/// the same list the functions get as `TGLINK_CORS_ORIGINS` — with the headers, age and
/// credentials policy of `shared::http::cors`, and none at all when the parameter is empty.
#[test]
fn cors_in_the_cloud_is_the_functions_policy() {
    use tglink_shared::http::cors::{ALLOW_HEADERS, EXPOSE_HEADERS, MAX_AGE_SECS};
    let template = Template::load();
    let doc = &template.doc;
    assert_eq!(
        doc["Parameters"]["CorsOrigins"]["Type"],
        "CommaDelimitedList"
    );
    assert_eq!(doc["Parameters"]["CorsOrigins"]["Default"], "");
    assert_eq!(
        doc["Globals"]["Function"]["Environment"]["Variables"]["TGLINK_CORS_ORIGINS"],
        json!({"Fn::Join": [",", {"Ref": "CorsOrigins"}]})
    );
    assert_eq!(
        doc["Conditions"]["HasCorsOrigins"],
        json!({"Fn::Not": [{"Fn::Equals": [{"Fn::Join": ["", {"Ref": "CorsOrigins"}]}, ""]}]})
    );
    let cors = &template.resource("HttpApi")["Properties"]["CorsConfiguration"]["Fn::If"];
    assert_eq!(cors[0], "HasCorsOrigins");
    assert_eq!(cors[2], json!({"Ref": "AWS::NoValue"}));
    let config = &cors[1];
    assert_eq!(config["AllowOrigins"], json!({"Ref": "CorsOrigins"}));
    let list = |v: &Value| {
        v.as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap())
            .collect::<Vec<_>>()
            .join(", ")
    };
    assert_eq!(list(&config["AllowHeaders"]), ALLOW_HEADERS);
    assert_eq!(list(&config["ExposeHeaders"]), EXPOSE_HEADERS);
    assert_eq!(config["MaxAge"], MAX_AGE_SECS);
    assert_eq!(config["AllowCredentials"], false);
    // Every method a route uses is allowed.
    let methods: BTreeSet<&str> = FUNCTIONS
        .iter()
        .flat_map(|f| f.routes.iter().map(|r| r.method))
        .collect();
    let allowed = list(&config["AllowMethods"]);
    for method in methods {
        assert!(
            allowed.split(", ").any(|m| m == method),
            "{method} not in {allowed}"
        );
    }
}

/// Every function answers before its Lambda `Timeout`: the request deadline (after which a
/// request is answered 503 + `Retry-After`) plus its margin fits in every function's timeout,
/// and each AWS call (its attempts and backoff) and each Bot API call ends within the deadline.
/// The hang test (`e2e faults::`) shows the timeouts at work.
#[test]
fn every_function_answers_before_its_lambda_timeout() {
    use std::time::Duration;
    use tglink_shared::{aws, runtime, telegram::bot_api};

    let template = Template::load();
    let global = template.doc["Globals"]["Function"]["Timeout"].as_u64();
    let functions = template.functions();
    assert_eq!(functions.len(), FUNCTIONS.len());
    for function in functions {
        let timeout = function.resource["Properties"]["Timeout"]
            .as_u64()
            .or(global)
            .unwrap_or(3); // Lambda's own default
        assert!(
            runtime::REQUEST_DEADLINE + runtime::DEADLINE_MARGIN <= Duration::from_secs(timeout),
            "{}: Timeout {timeout} s leaves no time to answer after the {:?} request deadline",
            function.name,
            runtime::REQUEST_DEADLINE
        );
    }
    assert!(aws::CONNECT_TIMEOUT <= aws::ATTEMPT_TIMEOUT);
    assert!(aws::ATTEMPT_TIMEOUT <= aws::OPERATION_TIMEOUT);
    let attempts = std::hint::black_box(aws::MAX_ATTEMPTS);
    assert!(attempts >= 2, "a lost answer deserves one retry");
    assert!(aws::OPERATION_TIMEOUT < runtime::REQUEST_DEADLINE);
    assert!(bot_api::CONNECT_TIMEOUT <= bot_api::REQUEST_TIMEOUT);
    assert!(bot_api::REQUEST_TIMEOUT < runtime::REQUEST_DEADLINE);
}
