//! `openapi.yaml`: its operations, and a check of real responses against it (schemas included)
//! through `tests/openapi_responses.py` (OpenAPI 3.1 schema dialect, on the pinned venv).

use std::{collections::BTreeMap, process::Command};

use serde_json::Value;

pub const METHODS: &[&str] = &["get", "put", "post", "delete", "patch", "head", "options"];

pub fn text() -> String {
    let path = crate::workspace_root().join("openapi.yaml");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

pub fn load() -> Value {
    let yaml: serde_norway::Value =
        serde_norway::from_str(&text()).expect("openapi.yaml is valid YAML");
    crate::template::yaml_to_json(yaml)
}

/// `(METHOD, path)` → the operation object, for every operation of the spec.
pub fn operations(spec: &Value) -> BTreeMap<(String, String), Value> {
    let mut out = BTreeMap::new();
    for (path, item) in spec["paths"].as_object().expect("paths").iter() {
        for (method, operation) in item.as_object().expect("path item").iter() {
            if METHODS.contains(&method.as_str()) {
                out.insert(
                    (method.to_ascii_uppercase(), path.clone()),
                    operation.clone(),
                );
            }
        }
    }
    out
}

/// Checks `responses` (JSON lines, see `Session::responses_jsonl`) against the spec; panics
/// with the problems found.
pub fn check_responses(responses: &str) {
    if let Err(report) = try_check_responses(responses) {
        panic!("responses do not match openapi.yaml:\n{report}");
    }
}

/// The checker's report when `responses` do not match the spec.
pub fn try_check_responses(responses: &str) -> Result<(), String> {
    let dir = tempfile::TempDir::new().expect("temp dir");
    let file = dir.path().join("responses.jsonl");
    std::fs::write(&file, responses).expect("write responses");
    let root = crate::workspace_root();
    let out = Command::new(crate::cloud::venv_python())
        .arg(root.join("tests/openapi_responses.py"))
        .arg(root.join("openapi.yaml"))
        .arg(&file)
        .output()
        .expect("run tests/openapi_responses.py");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() && report.contains("responses conform") {
        Ok(())
    } else {
        Err(report)
    }
}
