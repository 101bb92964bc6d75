//! The documentation against the code, so that it cannot drift:
//!
//! - the error-code table of `docs/api.md` is exactly the problem codes `openapi.yaml` declares
//!   (each `status` + `code` pair, both ways), and its route table is exactly the spec's
//!   operations, each with the function serving it;
//! - every relative link in `README.md`, `CONTRIBUTING.md` and `docs/*.md` resolves to a file or
//!   directory of the repository, and a `#anchor` into a Markdown file to one of its headings
//!   (GitHub's heading ids);
//! - every document of `docs/` and `CONTRIBUTING.md` is linked from the README, which stays short.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Component, Path, PathBuf},
};

use serde_json::Value;
use tglink_tests::{openapi, workspace_root};

/// Problem codes answered outside every operation of the spec, so that no operation can declare
/// them: `405` is the answer to a method that no operation of a known path has, `403
/// cors_origin_not_allowed` the answer to a CORS preflight (`OPTIONS`, no operation).
const OUTSIDE_OPERATIONS: &[(u16, &str)] = &[
    (405, "method_not_allowed"),
    (403, "cors_origin_not_allowed"),
];

/// The README's length limit (a newcomer's first read; the rest lives in `docs/`).
const README_MAX_LINES: usize = 250;

// ---------------------------------------------------------------------------------------------
// Markdown, as much of it as these checks need.

fn read(relative: &str) -> String {
    let path = workspace_root().join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// The Markdown files whose links are checked: the README, CONTRIBUTING.md and `docs/*.md`.
fn markdown_files() -> Vec<PathBuf> {
    let root = workspace_root();
    let mut files = vec![root.join("README.md"), root.join("CONTRIBUTING.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))
        .expect("docs/ exists")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    files.extend(docs);
    files
}

/// The lines of `text` outside fenced code blocks, with their 1-based numbers.
fn prose_lines(text: &str) -> Vec<(usize, &str)> {
    let mut fence: Option<(char, usize)> = None;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        let marker = trimmed.chars().next().filter(|c| *c == '`' || *c == '~');
        let run = marker.map_or(0, |m| trimmed.chars().take_while(|c| *c == m).count());
        match (fence, marker) {
            (None, Some(m)) if run >= 3 => fence = Some((m, run)),
            (Some((m, n)), Some(c)) if c == m && run >= n && trimmed[run..].trim().is_empty() => {
                fence = None
            }
            (None, _) => out.push((i + 1, line)),
            _ => {}
        }
    }
    out
}

/// `line` with the contents of its code spans blanked (links inside code are not links).
fn without_code_spans(line: &str) -> String {
    let chars: Vec<char> = line.chars().collect();
    let mut out = String::with_capacity(line.len());
    let mut i = 0;
    while i < chars.len() {
        if chars[i] != '`' {
            out.push(chars[i]);
            i += 1;
            continue;
        }
        let run = chars[i..].iter().take_while(|c| **c == '`').count();
        // The closing run of exactly the same length.
        let mut j = i + run;
        let mut close = None;
        while j < chars.len() {
            if chars[j] == '`' {
                let n = chars[j..].iter().take_while(|c| **c == '`').count();
                if n == run {
                    close = Some(j);
                    break;
                }
                j += n;
            } else {
                j += 1;
            }
        }
        match close {
            Some(j) => {
                out.extend(std::iter::repeat_n(' ', j + run - i));
                i = j + run;
            }
            None => {
                out.extend(&chars[i..i + run]);
                i += run;
            }
        }
    }
    out
}

/// The code spans of `cell` (backtick runs of one length), their contents trimmed.
fn code_spans(cell: &str) -> Vec<String> {
    let mut spans = Vec::new();
    let mut rest = cell;
    while let Some(start) = rest.find('`') {
        let run = rest[start..].chars().take_while(|c| *c == '`').count();
        let fence = "`".repeat(run);
        let after = &rest[start + run..];
        match after.find(&fence) {
            Some(end) => {
                spans.push(after[..end].trim().to_owned());
                rest = &after[end + run..];
            }
            None => break,
        }
    }
    spans
}

/// The targets of the inline links and images (`[text](target)`) and the link reference
/// definitions (`[label]: target`) of `text`, with their line numbers.
fn link_targets(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (number, line) in prose_lines(text) {
        let line = without_code_spans(line);
        if let Some(definition) = line.trim_start().strip_prefix('[')
            && let Some((_, target)) = definition.split_once("]:")
        {
            if let Some(target) = target.split_whitespace().next() {
                out.push((number, target.trim_matches(['<', '>']).to_owned()));
            }
            continue;
        }
        let mut rest = line.as_str();
        while let Some(at) = rest.find("](") {
            let after = &rest[at + 2..];
            // The destination ends at the parenthesis closing it (balanced) or at a title.
            let mut depth = 0usize;
            let mut end = after.len();
            for (i, c) in after.char_indices() {
                match c {
                    '(' => depth += 1,
                    ')' if depth == 0 => {
                        end = i;
                        break;
                    }
                    ')' => depth -= 1,
                    _ => {}
                }
            }
            let destination = after[..end].split_whitespace().next().unwrap_or("");
            out.push((number, destination.trim_matches(['<', '>']).to_owned()));
            rest = &after[end.min(after.len())..];
        }
    }
    out
}

/// GitHub's id of a heading: its text (code, emphasis and link markup dropped) lower-cased,
/// without punctuation other than `-` and `_`, spaces turned into `-`.
fn slug(heading: &str) -> String {
    // `[text](url)` → `text`.
    let mut text = String::new();
    let mut rest = heading;
    while let Some(open) = rest.find('[') {
        match rest[open..].find("](") {
            Some(mid) => {
                let close = rest[open + mid..].find(')').map(|c| open + mid + c);
                text.push_str(&rest[..open]);
                text.push_str(&rest[open + 1..open + mid]);
                rest = close.map_or("", |c| &rest[c + 1..]);
            }
            None => {
                text.push_str(&rest[..=open]);
                rest = &rest[open + 1..];
            }
        }
    }
    text.push_str(rest);
    text.trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_'))
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// The ids of the ATX headings of `text`, a repeated one numbered as GitHub does (`-1`, …).
fn heading_ids(text: &str) -> BTreeSet<String> {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut ids = BTreeSet::new();
    for (_, line) in prose_lines(text) {
        let trimmed = line.trim_start();
        let level = trimmed.chars().take_while(|c| *c == '#').count();
        if !(1..=6).contains(&level) || !trimmed[level..].starts_with([' ', '\t']) {
            continue;
        }
        let base = slug(trimmed[level..].trim().trim_end_matches('#'));
        let n = seen.entry(base.clone()).or_insert(0);
        ids.insert(if *n == 0 {
            base.clone()
        } else {
            format!("{base}-{n}")
        });
        *n += 1;
    }
    ids
}

/// The cells of a table row (`| a | b |`), split at unescaped `|`, `\|` unescaped.
fn cells(row: &str) -> Vec<String> {
    let row = row.trim();
    let row = row.strip_prefix('|').unwrap_or(row);
    let row = row.strip_suffix('|').unwrap_or(row);
    let mut out = vec![String::new()];
    let mut chars = row.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'|') => {
                out.last_mut().unwrap().push('|');
                chars.next();
            }
            '|' => out.push(String::new()),
            c => out.last_mut().unwrap().push(c),
        }
    }
    out.into_iter().map(|c| c.trim().to_owned()).collect()
}

/// The body rows of the table of `text` whose header row is exactly `header`.
fn table(text: &str, header: &[&str]) -> Vec<(usize, Vec<String>)> {
    let lines = prose_lines(text);
    let start = lines
        .iter()
        .position(|(_, line)| line.trim_start().starts_with('|') && cells(line) == header)
        .unwrap_or_else(|| panic!("no table with the columns {header:?}"));
    lines[start + 2..]
        .iter()
        .take_while(|(_, line)| line.trim_start().starts_with('|'))
        .map(|(number, line)| (*number, cells(line)))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// openapi.yaml

/// Follows a local `$ref` (`#/components/...`).
fn resolve<'a>(spec: &'a Value, node: &'a Value) -> &'a Value {
    match node["$ref"].as_str() {
        Some(reference) => {
            let target = reference
                .strip_prefix("#/")
                .unwrap_or_else(|| panic!("only local references: {reference}"))
                .split('/')
                .fold(spec, |node, part| &node[part]);
            resolve(spec, target)
        }
        None => node,
    }
}

/// The `code`s a problem schema allows (`const` or `enum` of its `code` property, through
/// `$ref`, `allOf`, `anyOf` and `oneOf`).
fn schema_codes(spec: &Value, schema: &Value, out: &mut BTreeSet<String>) {
    let schema = resolve(spec, schema);
    let code = &schema["properties"]["code"];
    if let Some(c) = code["const"].as_str() {
        out.insert(c.to_owned());
    }
    for c in code["enum"].as_array().into_iter().flatten() {
        out.insert(c.as_str().expect("codes are strings").to_owned());
    }
    for combinator in ["allOf", "anyOf", "oneOf"] {
        for part in schema[combinator].as_array().into_iter().flatten() {
            schema_codes(spec, part, out);
        }
    }
}

/// `(status, code)` → the operations (`METHOD /path`) declaring it, over every 4xx/5xx
/// response of the spec. Every problem response must name its codes.
fn declared_problems(spec: &Value) -> BTreeMap<(u16, String), BTreeSet<String>> {
    let mut out: BTreeMap<(u16, String), BTreeSet<String>> = BTreeMap::new();
    for ((method, path), operation) in openapi::operations(spec) {
        for (status, response) in operation["responses"].as_object().expect("responses") {
            if !(status.starts_with('4') || status.starts_with('5')) {
                continue;
            }
            let at = format!("{method} {path}");
            let response = resolve(spec, response);
            if path.starts_with("/oauth/") && response["content"]["application/json"].is_object() {
                // RFC 6749 errors, listed in docs/api.md's OAuth section.
                continue;
            }
            let schema = &response["content"]["application/problem+json"]["schema"];
            let mut codes = BTreeSet::new();
            schema_codes(spec, schema, &mut codes);
            assert!(
                !codes.is_empty(),
                "{at} {status}: the problem response declares no `code` (const or enum)"
            );
            let status: u16 = status.parse().expect("a numeric status");
            for code in codes {
                out.entry((status, code)).or_default().insert(at.clone());
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// The tests.

#[test]
fn the_error_code_table_is_the_specs_problem_codes() {
    let spec = openapi::load();
    let declared = declared_problems(&spec);
    let doc = read("docs/api.md");
    let mut documented: BTreeMap<(u16, String), usize> = BTreeMap::new();
    for (number, row) in table(&doc, &["status", "code", "when"]) {
        let status: u16 = row[0]
            .parse()
            .unwrap_or_else(|_| panic!("docs/api.md:{number}: status {:?}", row[0]));
        let codes = code_spans(&row[1]);
        assert!(
            !codes.is_empty(),
            "docs/api.md:{number}: no `code` in the row"
        );
        assert!(!row[2].is_empty(), "docs/api.md:{number}: say when");
        for code in codes {
            assert!(
                documented.insert((status, code.clone()), number).is_none(),
                "docs/api.md:{number}: {status} `{code}` is in the table twice"
            );
        }
    }

    let outside: BTreeSet<(u16, String)> = OUTSIDE_OPERATIONS
        .iter()
        .map(|(s, c)| (*s, (*c).to_owned()))
        .collect();
    for pair in &outside {
        assert!(
            !declared.contains_key(pair),
            "{pair:?} is declared in openapi.yaml now: remove it from OUTSIDE_OPERATIONS"
        );
    }
    let missing: Vec<String> = declared
        .iter()
        .filter(|(pair, _)| !documented.contains_key(*pair))
        .map(|((status, code), at)| {
            let at: Vec<&str> = at.iter().map(String::as_str).collect();
            format!("| {status} | `{code}` | … ({}) |", at.join(", "))
        })
        .collect();
    assert!(
        missing.is_empty(),
        "problem codes of openapi.yaml missing from the table in docs/api.md (rows to add):\n{}",
        missing.join("\n")
    );
    let undeclared: Vec<String> = documented
        .iter()
        .filter(|(pair, _)| !declared.contains_key(*pair) && !outside.contains(*pair))
        .map(|((status, code), number)| format!("docs/api.md:{number}: {status} `{code}`"))
        .collect();
    assert!(
        undeclared.is_empty(),
        "codes in docs/api.md that no operation of openapi.yaml declares with that status:\n{}",
        undeclared.join("\n")
    );
    for pair in &outside {
        assert!(
            documented.contains_key(pair),
            "{pair:?} (answered outside the operations) is documented"
        );
    }
}

#[test]
fn the_route_table_is_the_specs_operations() {
    let spec = openapi::load();
    let in_spec: BTreeSet<(String, String, String)> = openapi::operations(&spec)
        .into_iter()
        .map(|((method, path), operation)| {
            let function = operation["tags"][0].as_str().expect("a tag").to_owned();
            (function, method, path)
        })
        .collect();
    let doc = read("docs/api.md");
    let mut in_doc = BTreeSet::new();
    for (number, row) in table(&doc, &["function", "route", "auth", "result"]) {
        let route = code_spans(&row[1])
            .into_iter()
            .next()
            .unwrap_or_else(|| panic!("docs/api.md:{number}: no `METHOD /path`"));
        let (method, path) = route
            .split_once(' ')
            .unwrap_or_else(|| panic!("docs/api.md:{number}: {route:?} is not `METHOD /path`"));
        assert!(
            in_doc.insert((row[0].clone(), method.to_owned(), path.to_owned())),
            "docs/api.md:{number}: {route} is in the table twice"
        );
    }
    assert_eq!(
        in_doc.difference(&in_spec).collect::<Vec<_>>(),
        Vec::<&(String, String, String)>::new(),
        "rows of docs/api.md's route table that are not operations of openapi.yaml (function, method, path)"
    );
    assert_eq!(
        in_spec.difference(&in_doc).collect::<Vec<_>>(),
        Vec::<&(String, String, String)>::new(),
        "operations of openapi.yaml missing from docs/api.md's route table (function, method, path)"
    );
}

/// `path` with `.` and `..` resolved lexically.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

#[test]
fn every_relative_link_resolves() {
    let root = normalize(&workspace_root());
    let mut broken = Vec::new();
    for file in markdown_files() {
        let text = std::fs::read_to_string(&file)
            .unwrap_or_else(|e| panic!("read {}: {e}", file.display()));
        let name = file
            .strip_prefix(&root)
            .unwrap_or(&file)
            .display()
            .to_string();
        for (number, target) in link_targets(&text) {
            let at = format!("{name}:{number}: {target}");
            if target.is_empty() {
                broken.push(format!("{at}: empty link"));
                continue;
            }
            if target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            let (path, anchor) = target.split_once('#').unwrap_or((&target, ""));
            let resolved = if path.is_empty() {
                file.clone()
            } else {
                normalize(&file.parent().expect("a directory").join(path))
            };
            if !resolved.starts_with(&root) {
                broken.push(format!("{at}: outside the repository"));
                continue;
            }
            if !resolved.exists() {
                broken.push(format!("{at}: no such file or directory"));
                continue;
            }
            if anchor.is_empty() || resolved.extension().is_none_or(|e| e != "md") {
                continue;
            }
            let ids = heading_ids(&std::fs::read_to_string(&resolved).expect("read target"));
            if !ids.contains(anchor) {
                broken.push(format!("{at}: no heading with the id {anchor:?}"));
            }
        }
    }
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

#[test]
fn the_readme_is_short_and_links_every_document() {
    let readme = read("README.md");
    let lines = readme.lines().count();
    assert!(
        lines <= README_MAX_LINES,
        "README.md has {lines} lines (at most {README_MAX_LINES}): move detail into docs/"
    );
    let linked: BTreeSet<PathBuf> = link_targets(&readme)
        .into_iter()
        .filter(|(_, t)| !t.contains("://"))
        .map(|(_, t)| normalize(Path::new(t.split('#').next().unwrap_or(""))))
        .collect();
    let root = workspace_root();
    for file in markdown_files().into_iter().skip(1) {
        let relative = file.strip_prefix(&root).expect("in the repository");
        assert!(
            linked.contains(relative),
            "README.md links {}",
            relative.display()
        );
    }
    let design = read("docs/design.md");
    assert!(
        design.contains("design of record"),
        "docs/design.md says that it is the design of record"
    );
}

/// The Markdown helpers on the cases the documents use.
#[test]
fn the_markdown_helpers_read_what_github_renders() {
    assert_eq!(
        slug("Registration callbacks (for 2FA providers)"),
        "registration-callbacks-for-2fa-providers"
    );
    assert_eq!(
        slug("IAM: least privilege per function"),
        "iam-least-privilege-per-function"
    );
    assert_eq!(slug("`TGLINK_AWS_TRUST_STORE`"), "tglink_aws_trust_store");
    assert_eq!(slug("See [the API](api.md)"), "see-the-api");
    assert_eq!(slug("Why *not* moto's server?"), "why-not-motos-server");
    let text = "# A\n\n```sh\n# not a heading [x](nowhere.md)\n```\n## A\ntext [b](b.md#c) `[d](e.md)` ![i](img.png)\n[ref]: <r.md>\n";
    assert_eq!(
        heading_ids(text),
        BTreeSet::from(["a".to_owned(), "a-1".to_owned()])
    );
    assert_eq!(
        link_targets(text),
        vec![
            (7, "b.md#c".to_owned()),
            (7, "img.png".to_owned()),
            (8, "r.md".to_owned())
        ]
    );
    assert_eq!(
        cells(r"| 400 | `a`, `b` | x \| y |"),
        vec!["400", "`a`, `b`", "x | y"]
    );
    assert_eq!(
        code_spans("`POST /x` `{\"a\"}`"),
        vec!["POST /x", "{\"a\"}"]
    );
}

/// The licence the packages and the API declare is the one the repository ships: `Cargo.toml`'s
/// `license` and `openapi.yaml`'s `info.license.identifier` are one SPDX id, and `LICENSE` holds
/// that licence's text.
#[test]
fn the_license_file_is_the_declared_license() {
    let manifest = read("Cargo.toml");
    let declared = manifest
        .lines()
        .skip_while(|l| l.trim() != "[workspace.package]")
        .find_map(|l| l.trim().strip_prefix("license = "))
        .map(|v| v.trim_matches('"'))
        .expect("[workspace.package] declares a license");
    let spec = openapi::load();
    assert_eq!(spec["info"]["license"]["identifier"], declared);
    let text = read("LICENSE");
    let first_line = text.lines().next().unwrap_or_default();
    assert_eq!(
        first_line,
        format!("{declared} License"),
        "LICENSE names {declared}"
    );
    assert!(
        text.contains("Permission is hereby granted, free of charge"),
        "LICENSE holds the {declared} licence text"
    );
}
