//! What the deployed Lambdas are built with (zip budget 4 MB): `make build` and `make bench`
//! build the function crates alone (`-p <function>` …), SAM's `rust-cargolambda` builds each in
//! its `CodeUri` directory (`cargo lambda build --bin <function>` in `functions/<function>`).
//! Neither build may bring in what only the local API, the tests and `make watch` use: the
//! SQLite adapter (`tglink-shared`'s `sqlite` feature, bundled SQLite), `aws-config`'s `sso`
//! and `credentials-process`, `tracing-subscriber`'s `env-filter`. Read from `cargo tree`
//! (Cargo's own feature resolution for that package selection), without building.

use std::{path::Path, process::Command};

use tglink_tests::{functions::FUNCTIONS, workspace_root};

/// Packages and `<package> feature "<feature>"` lines a deployed build must not have.
const LEFT_OUT: &[&str] = &[
    "rusqlite v",
    "libsqlite3-sys v",
    "aws-sdk-sso v",
    "aws-sdk-ssooidc v",
    "matchers v",
    r#"tglink-shared feature "sqlite""#,
    r#"aws-config feature "sso""#,
    r#"aws-config feature "credentials-process""#,
    r#"tracing-subscriber feature "env-filter""#,
];

/// `cargo tree` (normal dependencies and features, one line per node) run in `dir`.
fn tree(dir: &Path, args: &[&str]) -> String {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let out = Command::new(cargo)
        .current_dir(dir)
        .args([
            "tree",
            "--offline",
            "-e",
            "normal,features",
            "--prefix",
            "none",
        ])
        .args(args)
        .output()
        .expect("run cargo tree");
    assert!(
        out.status.success(),
        "cargo tree {args:?} in {}: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("cargo tree prints UTF-8")
}

fn present<'a>(tree: &str, lines: &[&'a str]) -> Vec<&'a str> {
    lines
        .iter()
        .copied()
        .filter(|line| tree.lines().any(|l| l.starts_with(line)))
        .collect()
}

#[test]
fn deployed_builds_leave_out_sqlite_sso_and_env_filter() {
    let root = workspace_root();
    // make build / make bench: every function crate in one invocation.
    let mut args = vec![];
    for f in FUNCTIONS {
        args.extend(["-p", f.name]);
    }
    let all = tree(&root, &args);
    assert!(all.contains("tglink-shared v"), "{all}");
    assert_eq!(present(&all, LEFT_OUT), Vec::<&str>::new(), "make build");
    // sam build: each function in its CodeUri directory, the current package alone.
    for f in FUNCTIONS {
        let one = tree(&root.join("functions").join(f.name), &[]);
        assert!(one.starts_with(&format!("{} v", f.name)), "{}", f.name);
        assert_eq!(
            present(&one, LEFT_OUT),
            Vec::<&str>::new(),
            "sam build {}",
            f.name
        );
    }
}

#[test]
fn local_api_and_tests_have_the_sqlite_adapter() {
    let root = workspace_root();
    for package in ["local-api", "tglink-tests"] {
        let tree = tree(&root, &["-p", package]);
        assert_eq!(
            present(
                &tree,
                &[
                    r#"tglink-shared feature "sqlite""#,
                    "rusqlite v",
                    "libsqlite3-sys v"
                ]
            )
            .len(),
            3,
            "{package}"
        );
    }
    let local = tree(&root, &["-p", "local-api"]);
    assert_eq!(
        present(
            &local,
            &[
                r#"aws-config feature "sso""#,
                r#"aws-config feature "credentials-process""#
            ]
        )
        .len(),
        2,
        "local-api keeps developers' AWS profiles"
    );
}
