//! Code blocks of the documentation that tests run: a fenced block right after a marker line
//! `<!-- <kind>: NAME -->` (`snippet` in the integration guide, `walkthrough` for the local
//! walkthrough in README.md and docs/api.md). What a reader copies is what runs.

use std::path::Path;

/// One marked block: its name, the fence's language and the code (with a final newline).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snippet {
    pub name: String,
    pub lang: String,
    pub code: String,
}

fn marker(kind: &str) -> String {
    format!("<!-- {kind}: ")
}

/// The blocks of `text` marked `kind`, in order. Panics on a marker not followed by a fence
/// with a language.
pub fn extract(text: &str, kind: &str) -> Vec<Snippet> {
    let marker = marker(kind);
    let mut out = Vec::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        let Some(rest) = line.strip_prefix(marker.as_str()) else {
            continue;
        };
        let name = rest
            .strip_suffix(" -->")
            .unwrap_or_else(|| panic!("malformed marker: {line}"))
            .to_owned();
        let lang = lines
            .next()
            .and_then(|fence| fence.strip_prefix("```"))
            .filter(|l| !l.is_empty())
            .unwrap_or_else(|| panic!("{kind} {name}: a fenced block with a language follows"))
            .to_owned();
        let code: Vec<&str> = lines.by_ref().take_while(|l| *l != "```").collect();
        out.push(Snippet {
            name,
            lang,
            code: code.join("\n") + "\n",
        });
    }
    out
}

/// The blocks of the workspace file `path` marked `kind`.
pub fn in_file(path: &str, kind: &str) -> Vec<Snippet> {
    let text = std::fs::read_to_string(crate::workspace_root().join(path))
        .unwrap_or_else(|e| panic!("{path}: {e}"));
    extract(&text, kind)
}

/// The one block of `path` marked `kind` and named `name`.
pub fn named(path: &str, kind: &str, name: &str) -> Snippet {
    let found: Vec<Snippet> = in_file(path, kind)
        .into_iter()
        .filter(|s| s.name == name)
        .collect();
    assert_eq!(found.len(), 1, "{path}: exactly one {kind} named {name}");
    found.into_iter().next().unwrap()
}

/// The fenced blocks of `path` (by 1-based line and language) that carry no `kind` marker and
/// are not in `exempt` languages: what a reader could copy that no test runs.
pub fn unmarked(path: &Path, kind: &str, exempt: &[&str]) -> Vec<(usize, String)> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    let marker = marker(kind);
    let lines: Vec<&str> = text.lines().collect();
    let mut open = false;
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let Some(lang) = line.strip_prefix("```") else {
            continue;
        };
        open = !open;
        if open && !exempt.contains(&lang) && !(i > 0 && lines[i - 1].starts_with(&marker)) {
            out.push((i + 1, lang.to_owned()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marked_blocks_only() {
        let text = "x\n<!-- snippet: a -->\n```js\nlet a = 1;\nlet b = 2;\n```\n```text\nnot one\n```\n<!-- walkthrough: b -->\n```sh\necho\n```\n";
        let found = extract(text, "snippet");
        assert_eq!(
            found,
            vec![Snippet {
                name: "a".into(),
                lang: "js".into(),
                code: "let a = 1;\nlet b = 2;\n".into()
            }]
        );
        assert_eq!(extract(text, "walkthrough")[0].name, "b");
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("doc.md");
        std::fs::write(&file, text).unwrap();
        assert_eq!(
            unmarked(&file, "snippet", &["text"]),
            vec![(11, "sh".to_owned())]
        );
        assert!(unmarked(&file, "snippet", &["text", "sh"]).is_empty());
    }
}
