//! `coldstart`: cold start and peak memory of every function's release `bootstrap`, next to
//! the hello-world floor, under the loopback Runtime API (see `runtime_api`).
//!
//! ```text
//! coldstart --release <label>=<release dir> [--variant <label>=<dir>]... [--ssm]
//!           [--runs 10] [--warm 5] [--floor hello-lambda] [--functions a,b] --out <json>
//! ```
//!
//! `--release` is the release build as configured; each `--variant` is the same code built
//! with another setting (e.g. the other `AWS_LC_SYS_NO_JITTER_ENTROPY`). The configurations
//! measured: the release build as deployed (the AWS SDK trusting the embedded Amazon roots),
//! with `TGLINK_AWS_TRUST_STORE=platform` (the SDK's default: this machine's trust store, and one
//! CA bundle as Lambda's `provided.al2023` has), each variant, and with `--ssm` the release build reading its secrets from SSM at cold start (one
//! `GetParameters` on moto) as deployed. Runs are interleaved (run 1 of every binary of every
//! configuration, then run 2, …) so that a load change on the shared machine hits all alike.

use std::{path::PathBuf, time::Instant};

use bench_harness::{
    runtime_api::{Run, measure, reception_overhead_us},
    world::{World, apigw_event, functions},
};
use serde::Serialize;

const SSM_PREFIX: &str = "/tglink-bench/";

struct Args {
    release: (String, PathBuf),
    variants: Vec<(String, PathBuf)>,
    ssm: bool,
    runs: usize,
    warm: usize,
    floor: String,
    functions: Vec<String>,
    out: PathBuf,
}

fn args() -> Args {
    let mut args = Args {
        release: (String::new(), PathBuf::new()),
        variants: Vec::new(),
        ssm: false,
        runs: 10,
        warm: 5,
        floor: "hello-lambda".into(),
        functions: functions(),
        out: PathBuf::from("coldstart.json"),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        let mut labelled = |what: &str| {
            let v = value();
            let (name, dir) = v
                .split_once('=')
                .unwrap_or_else(|| panic!("{what} label=dir"));
            (name.to_owned(), PathBuf::from(dir))
        };
        match flag.as_str() {
            "--release" => args.release = labelled("--release"),
            "--variant" => {
                let v = labelled("--variant");
                args.variants.push(v);
            }
            "--ssm" => args.ssm = true,
            "--runs" => args.runs = value().parse().expect("--runs N"),
            "--warm" => args.warm = value().parse().expect("--warm N"),
            "--floor" => args.floor = value(),
            "--functions" => {
                args.functions = value().split(',').map(str::to_owned).collect();
            }
            "--out" => args.out = value().into(),
            other => panic!("unknown argument {other}"),
        }
    }
    assert!(
        !args.release.0.is_empty(),
        "give the release build: --release <label>=<dir>"
    );
    args
}

#[derive(Serialize)]
struct Config {
    label: String,
    /// What differs, in words.
    description: String,
    dir: PathBuf,
    /// Variables set (or overridden) for the bootstrap.
    env: Vec<(String, String)>,
    ssm: bool,
    /// Whether the cold-start budget is judged on this configuration.
    budget: bool,
}

#[derive(Serialize)]
struct Series {
    config: String,
    binary: String,
    floor: bool,
    request: String,
    expect: u16,
    runs: Vec<Run>,
}

#[derive(Serialize)]
struct Output {
    runs: usize,
    warm: usize,
    /// A poll's trip through the emulated Runtime API (in every poll figure alike).
    reception_overhead_us: u64,
    configs: Vec<Config>,
    series: Vec<Series>,
    seconds: f64,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let began = Instant::now();
    let args = args();
    let world = World::new().await;
    let (label, dir) = args.release.clone();
    let mut configs = vec![
        Config {
            label: label.clone(),
            description: format!(
                "the release build ({label}) as deployed: the AWS SDK's HTTPS client trusts the embedded Amazon Trust Services roots (`TGLINK_AWS_TRUST_STORE` unset = `amazon`) and reads no platform trust store"
            ),
            dir: dir.clone(),
            env: Vec::new(),
            ssm: false,
            budget: true,
        },
        Config {
            label: format!("{label}, platform trust store"),
            description: format!(
                "as above with `TGLINK_AWS_TRUST_STORE=platform`: the AWS SDK's default, this machine's trust store (what `openssl-probe` finds: {})",
                trust_store_description()
            ),
            dir: dir.clone(),
            env: vec![("TGLINK_AWS_TRUST_STORE".into(), "platform".into())],
            ssm: false,
            budget: false,
        },
        Config {
            label: format!("{label}, platform trust store, one CA bundle"),
            description: format!(
                "as above with `TGLINK_AWS_TRUST_STORE=platform` and `SSL_CERT_FILE={}`: one CA bundle and no hashed directory, as on Lambda's `provided.al2023` (one `tls-ca-bundle.pem`)",
                system_bundle()
            ),
            dir: dir.clone(),
            env: vec![
                ("TGLINK_AWS_TRUST_STORE".into(), "platform".into()),
                ("SSL_CERT_FILE".into(), system_bundle()),
            ],
            ssm: false,
            budget: false,
        },
    ];
    for (variant, vdir) in &args.variants {
        configs.push(Config {
            label: variant.clone(),
            description: format!(
                "the same code built with the other setting ({variant}), as deployed otherwise"
            ),
            dir: vdir.clone(),
            env: Vec::new(),
            ssm: false,
            budget: false,
        });
    }
    if args.ssm {
        world.put_secrets_in_ssm(SSM_PREFIX).await;
        configs.push(Config {
            label: format!("{label} + SSM"),
            description: "the release build reading its secrets from SSM at cold start (one `GetParameters`, here on moto), as deployed".into(),
            dir: dir.clone(),
            env: Vec::new(),
            ssm: true,
            budget: false,
        });
    }
    let overhead = reception_overhead_us(50).await;
    eprintln!("coldstart: Runtime API reception overhead {overhead} µs");

    let binaries: Vec<(String, bool)> = std::iter::once((args.floor.clone(), true))
        .chain(args.functions.iter().map(|f| (f.clone(), false)))
        .collect();
    let mut series: Vec<Series> = Vec::new();
    for config in &configs {
        for (binary, floor) in &binaries {
            // The floor has no routes: any event gets its fixed 200.
            let request = if *floor {
                "any event: a fixed 200 response".to_owned()
            } else {
                world.events(binary, 1).await.request
            };
            let expect = if *floor {
                200
            } else {
                world.events(binary, 1).await.expect
            };
            series.push(Series {
                config: config.label.clone(),
                binary: binary.clone(),
                floor: *floor,
                request,
                expect,
                runs: Vec::new(),
            });
        }
    }

    // One unmeasured run of each, so that every binary is in the page cache.
    for round in 0..=args.runs {
        for s in series.iter_mut() {
            let config = configs
                .iter()
                .find(|c| c.label == s.config)
                .expect("config");
            let path = config.dir.join(&s.binary);
            if !path.exists() {
                if round == 0 {
                    eprintln!("coldstart: {} not built, skipped", path.display());
                }
                continue;
            }
            let events = if s.floor {
                vec![apigw_event("GET", "/", &[], None); 1 + args.warm]
            } else {
                world.events(&s.binary, 1 + args.warm).await.events
            };
            let mut env = world.lambda_env(&s.binary, config.ssm.then_some(SSM_PREFIX));
            env.extend(config.env.iter().cloned());
            let run = measure(&path, &env, events)
                .await
                .unwrap_or_else(|e| panic!("{} ({}): {e}", s.binary, s.config));
            if let Some(bad) = run.statuses.iter().find(|st| **st != s.expect) {
                panic!(
                    "{} ({}) answered {bad}, expected {} for {}",
                    s.binary, s.config, s.expect, s.request
                );
            }
            if round > 0 {
                s.runs.push(run);
            }
        }
        eprintln!("coldstart: round {round}/{} done", args.runs);
    }
    series.retain(|s| !s.runs.is_empty());

    let output = Output {
        runs: args.runs,
        warm: args.warm,
        reception_overhead_us: overhead,
        configs,
        series,
        seconds: began.elapsed().as_secs_f64(),
    };
    if let Some(parent) = args.out.parent() {
        std::fs::create_dir_all(parent).expect("output directory");
    }
    std::fs::write(
        &args.out,
        serde_json::to_vec_pretty(&output).expect("serialize"),
    )
    .expect("write output");
    eprintln!(
        "coldstart: wrote {} in {:.0} s",
        args.out.display(),
        began.elapsed().as_secs_f64()
    );
}

/// The CA bundle `openssl-probe` (hence rustls-native-certs) finds first on Linux.
fn system_bundle() -> String {
    [
        "/etc/ssl/certs/ca-certificates.crt",
        "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
        "/etc/pki/tls/certs/ca-bundle.crt",
    ]
    .iter()
    .find(|p| std::path::Path::new(p).exists())
    .map(|p| (*p).to_owned())
    .unwrap_or_default()
}

/// The bundle and the certificate directories rustls-native-certs reads here, with sizes.
fn trust_store_description() -> String {
    let mut parts = Vec::new();
    let bundle = system_bundle();
    if let Ok(text) = std::fs::read_to_string(&bundle) {
        parts.push(format!(
            "`{bundle}` with {} certificates",
            text.matches("BEGIN CERTIFICATE").count()
        ));
    }
    for dir in ["/etc/ssl/certs", "/etc/pki/tls/certs"] {
        if let Ok(entries) = std::fs::read_dir(dir) {
            let files = entries.filter_map(Result::ok).count();
            parts.push(format!("`{dir}/` with {files} entries, every file read"));
        }
    }
    parts.join(" + ")
}
