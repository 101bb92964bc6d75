use std::{process::ExitCode, sync::Arc};

use tglink_shared::config::{Env, ProcessEnv};

#[tokio::main]
async fn main() -> ExitCode {
    tglink_shared::logging::init_local();
    let env = match local_api::local_env(Arc::new(ProcessEnv)) {
        Ok(env) => env,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    // `local-api dev-jwt <sub> [role…]` (make dev-jwt): print a development JWT and exit.
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some((command, rest)) = args.split_first() {
        if command != "dev-jwt" || rest.is_empty() {
            eprintln!("usage: local-api [dev-jwt <sub> [role…]]");
            return ExitCode::FAILURE;
        }
        return match local_api::dev_jwt_with_roles(env.as_ref(), &rest[0], &rest[1..]) {
            Some(jwt) => {
                println!("{jwt}");
                ExitCode::SUCCESS
            }
            None => {
                eprintln!("APP_JWT_PUBLIC_KEY is set: use a JWT from your identity provider");
                ExitCode::FAILURE
            }
        };
    }
    // TGLINK_DEV_FAKE_TELEGRAM=1: a built-in fake Bot API, so the vault works offline.
    let (env, fake_telegram) = match local_api::dev_telegram::with_dev_telegram(env).await {
        Ok(started) => started,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let listen = env
        .var("LISTEN_ADDR")
        .unwrap_or_else(|| local_api::DEFAULT_LISTEN_ADDR.to_owned());
    let running = match local_api::start(env.clone(), &listen).await {
        Ok(running) => running,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    println!("{}", local_api::banner(env.as_ref(), &running));
    if let Some(fake) = &fake_telegram {
        println!(
            "TGLINK_DEV_FAKE_TELEGRAM=1: a fake Bot API on {} accepts any well-formed bot token (bot @dev<id>_bot)",
            fake.base_url
        );
    }
    wait_for_signal().await;
    running.stop().await;
    ExitCode::SUCCESS
}

async fn wait_for_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("install SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
