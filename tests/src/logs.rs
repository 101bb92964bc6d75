//! Captures everything the process logs through `tracing` (JSON, as in Lambda), so a test can
//! assert that no secret ever reaches a log line.

use std::{
    io::Write,
    sync::{Arc, Mutex, OnceLock},
};

#[derive(Clone, Default)]
pub struct LogBuffer(Arc<Mutex<Vec<u8>>>);

impl LogBuffer {
    pub fn contents(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }

    /// Asserts that none of `secrets` appears in anything logged so far, and that something
    /// was logged at all (so the check can fail).
    pub fn assert_free_of(&self, secrets: &[&str]) {
        let logs = self.contents();
        assert!(
            !logs.is_empty(),
            "nothing was logged: the check would be empty"
        );
        for secret in secrets {
            assert!(!secret.is_empty());
            assert!(!logs.contains(secret), "a secret appears in the logs");
        }
    }
}

struct Writer(LogBuffer);

impl Write for Writer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Installs (once per test binary) a JSON subscriber at `debug` that writes into a buffer.
pub fn capture() -> LogBuffer {
    static BUFFER: OnceLock<LogBuffer> = OnceLock::new();
    BUFFER
        .get_or_init(|| {
            let buffer = LogBuffer::default();
            let sink = buffer.clone();
            tracing_subscriber::fmt()
                .json()
                .with_max_level(tracing::Level::DEBUG)
                .with_writer(move || Writer(sink.clone()))
                .try_init()
                .expect("log capture must be the first subscriber of this test binary");
            buffer
        })
        .clone()
}
