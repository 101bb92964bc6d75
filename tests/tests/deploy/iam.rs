//! Least privilege, derived from what the functions do: every function is built in-process the
//! way its `main.rs` builds it in Lambda (`Platform::Lambda`, secrets from SSM through
//! `TGLINK_SSM_PREFIX`, DynamoDB and KMS), the events of `tests/events/` are replayed through
//! it (`lambda_events::run_scenario`), and every AWS call it makes goes through a recording
//! proxy to moto. Then each function's role in `template.yaml` must allow every recorded
//! request (action, resource, KMS encryption context) and grant nothing that was not used.

use tglink_tests::{
    cloud::CloudLike,
    functions::{self, FUNCTIONS},
    lambda_events::{InProcess, Session, run_scenario},
    template::Template,
};

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
    let mut problems = Vec::new();
    for function in FUNCTIONS {
        let observed = session
            .observed
            .get(function.name)
            .cloned()
            .unwrap_or_default();
        assert!(
            observed.iter().any(|r| r.action == "ssm:GetParameters"),
            "{} read no secrets from SSM at its cold start: {observed:?}",
            function.name
        );
        problems.extend(
            template
                .function(function.name)
                .check_least_privilege(&observed, &cloud.deployment),
        );
    }
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
    let ssm = request(
        "ssm:GetParameters",
        tglink_tests::aws_recorder::parameter_arn("/tglink/prod/APP_JWT_SECRET"),
    );
    let put = request("dynamodb:PutItem", table_arn("t"));
    let connect_link = template.function("connect-link");
    assert!(
        connect_link
            .check_least_privilege(&[ssm.clone(), put.clone()], &deployment)
            .is_empty()
    );
    let problems = connect_link.check_least_privilege(
        &[
            ssm.clone(),
            put.clone(),
            request("dynamodb:GetItem", table_arn("t")),
        ],
        &deployment,
    );
    assert!(
        problems.iter().any(|p| p.contains("dynamodb:GetItem")),
        "{problems:?}"
    );
    let problems = connect_link.check_least_privilege(std::slice::from_ref(&ssm), &deployment);
    assert!(
        problems.iter().any(|p| p.contains("never used")),
        "{problems:?}"
    );
    let other_stage = request(
        "ssm:GetParameters",
        tglink_tests::aws_recorder::parameter_arn("/tglink/dev/APP_JWT_SECRET"),
    );
    let problems = connect_link.check_least_privilege(&[ssm, put, other_stage], &deployment);
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
