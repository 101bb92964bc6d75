//! The AWS SDK's HTTPS client trusts the Amazon Trust Services roots only, unless
//! `TGLINK_AWS_TRUST_STORE=platform` (see `tglink_shared::aws`).
//!
//! A TLS server on loopback presents a self-signed certificate for `localhost`
//! (`tests/fixtures/tls/`) and counts handshakes. With the default trust store the SDK refuses
//! it (connections arrive, no handshake completes); with the platform store and that
//! certificate as `SSL_CERT_FILE`, handshakes complete. One test in this binary: the platform
//! store is read once per process, so `SSL_CERT_FILE` is set before anything reads it.

use std::{
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
};

use rustls_pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
use tglink_shared::{
    aws::{AwsTrustStore, sdk_config},
    config::MapEnv,
};
use tokio::{io::AsyncReadExt, net::TcpListener};
use tokio_rustls::{
    TlsAcceptor,
    rustls::{ServerConfig, crypto::aws_lc_rs},
};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/tls")
        .join(name)
}

#[derive(Default)]
struct Counts {
    connections: AtomicUsize,
    handshakes: AtomicUsize,
}

/// A TLS server on a free loopback port; returns its port and counters.
async fn tls_server() -> (u16, Arc<Counts>) {
    let certs = CertificateDer::pem_file_iter(fixture("localhost.crt"))
        .expect("certificate file")
        .collect::<Result<Vec<_>, _>>()
        .expect("certificate PEM");
    let key = PrivateKeyDer::from_pem_file(fixture("localhost.key")).expect("key PEM");
    let config = ServerConfig::builder_with_provider(Arc::new(aws_lc_rs::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .expect("server certificate");
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let counts = Arc::new(Counts::default());
    let c = counts.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            c.connections.fetch_add(1, Ordering::SeqCst);
            let acceptor = acceptor.clone();
            let c = c.clone();
            tokio::spawn(async move {
                if let Ok(mut tls) = acceptor.accept(stream).await {
                    c.handshakes.fetch_add(1, Ordering::SeqCst);
                    // Read the request, then close without answering: only the handshake counts.
                    let mut buf = [0u8; 1024];
                    let _ = tls.read(&mut buf).await;
                }
            });
        }
    });
    (port, counts)
}

/// One DynamoDB call through the SDK configuration tglink builds, against `port`.
async fn call(port: u16, trust: Option<&str>) {
    let mut env = MapEnv::new();
    env.set("AWS_ENDPOINT_URL", format!("https://localhost:{port}"));
    env.set("AWS_REGION", "us-east-1");
    env.set("AWS_ACCESS_KEY_ID", "test");
    env.set("AWS_SECRET_ACCESS_KEY", "test");
    if let Some(trust) = trust {
        env.set(AwsTrustStore::VAR, trust);
    }
    let sdk = sdk_config(&env).await.expect("valid configuration");
    let result = aws_sdk_dynamodb::Client::new(&sdk)
        .list_tables()
        .send()
        .await;
    assert!(result.is_err(), "the server never answers");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_trusts_amazon_roots_by_default_and_the_platform_store_on_request() {
    // SAFETY: the only test in this binary, before anything reads the platform store.
    unsafe { std::env::set_var("SSL_CERT_FILE", fixture("localhost.crt")) };

    let (port, counts) = tls_server().await;
    call(port, None).await;
    assert!(
        counts.connections.load(Ordering::SeqCst) >= 1,
        "the SDK connected"
    );
    assert_eq!(
        counts.handshakes.load(Ordering::SeqCst),
        0,
        "a certificate outside the Amazon roots is refused by default"
    );

    let (port, counts) = tls_server().await;
    call(port, Some("amazon")).await;
    assert!(counts.connections.load(Ordering::SeqCst) >= 1);
    assert_eq!(counts.handshakes.load(Ordering::SeqCst), 0);

    let (port, counts) = tls_server().await;
    call(port, Some("platform")).await;
    assert!(
        counts.handshakes.load(Ordering::SeqCst) >= 1,
        "the platform store (SSL_CERT_FILE) trusts the test certificate"
    );
}
