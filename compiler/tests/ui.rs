//! The bad-input corpus: every `tests/ui/*.scp` must make `scpc check --deny-warnings` exit 1
//! without panicking, and report exactly the diagnostics its comments announce, on their lines
//! (`# error[CODE]`, `# warning[CODE]`), each with a file, line, column and help. The rendered
//! report of each file is pinned by an insta snapshot.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

fn scpc(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_scpc")).current_dir(dir).args(args).env("NO_COLOR", "1").output().expect("run scpc");
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

/// (file, severity, code, line) announced in the file's comments.
fn expectations(file: &str, text: &str) -> BTreeSet<(String, String, String, usize)> {
    let mut out = BTreeSet::new();
    for (i, line) in text.lines().enumerate() {
        for sev in ["error", "warning"] {
            let tag = format!("# {sev}[");
            let mut rest = line;
            while let Some(pos) = rest.find(&tag) {
                rest = &rest[pos + tag.len()..];
                let end = rest.find(']').expect("annotation closes with ]");
                out.insert((file.to_string(), sev.to_string(), rest[..end].to_string(), i + 1));
            }
        }
    }
    out
}

#[test]
fn bad_input_corpus() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ui");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .expect("tests/ui")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".scp"))
        .collect();
    names.sort();
    assert!(names.len() >= 40, "the corpus has {} files", names.len());
    let mut codes = BTreeSet::new();
    for name in &names {
        let text = std::fs::read_to_string(dir.join(name)).expect("read fixture");
        let mut expected = expectations(name, &text);
        let (code, stdout, stderr) = scpc(&dir, &["check", "--deny-warnings", "--message-format", "json", name]);
        assert_eq!(code, 1, "{name}: exit status\n{stdout}{stderr}");
        assert!(!stderr.contains("panicked"), "{name} panicked: {stderr}");
        let mut found = BTreeSet::new();
        for line in stdout.lines() {
            let d: serde_json::Value = serde_json::from_str(line).expect("one JSON object per line");
            let file = d["file"].as_str().unwrap_or_default();
            let (l, c) = (d["line"].as_u64().unwrap_or(0), d["column"].as_u64().unwrap_or(0));
            assert!(!file.is_empty() && l > 0 && c > 0, "{name}: unlocated diagnostic {d}");
            assert!(d["help"].as_str().is_some_and(|h| !h.is_empty()), "{name}: no help in {d}");
            let sev = d["severity"].as_str().unwrap_or_default().to_string();
            let dcode = d["code"].as_str().unwrap_or_default().to_string();
            codes.insert(dcode.clone());
            found.insert((file.to_string(), sev, dcode, l as usize));
        }
        // a diagnostic in an included file (an include cycle) is announced in that file
        let others: BTreeSet<String> = found.iter().map(|f| f.0.clone()).filter(|f| f != name).collect();
        for other in others {
            let text = std::fs::read_to_string(dir.join(&other)).expect("read included fixture");
            expected.extend(expectations(&other, &text));
        }
        assert!(!expected.is_empty(), "{name} announces no diagnostic");
        assert_eq!(found, expected, "{name}: diagnostics (file, severity, code, line) differ from the annotations\n{stdout}");
        let (_, _, human) = scpc(&dir, &["check", "--deny-warnings", name]);
        insta::assert_snapshot!(name.trim_end_matches(".scp"), human);
    }
    assert!(codes.len() >= 40, "the corpus covers {} diagnostic kinds: {codes:?}", codes.len());
}

#[test]
fn the_language_example_is_accepted() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../stdlib-policies/examples");
    let (code, stdout, stderr) = scpc(&dir, &["check", "web.scp"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stderr.contains("13 test case(s)"), "{stderr}");
}

#[test]
fn a_missing_root_file_is_an_io_failure() {
    let (code, _, stderr) = scpc(Path::new("."), &["check", "/nonexistent/x.scp"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("cannot read `/nonexistent/x.scp`: no such file"), "{stderr}");
}

#[test]
fn the_guide_first_example_is_clean() {
    let guide = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/language.md")).expect("docs/language.md");
    let block = guide.split("```\n").nth(1).expect("a code block");
    let dir = std::env::temp_dir().join(format!("scpc-guide-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    std::fs::write(dir.join("guide.scp"), block).expect("write");
    let (code, stdout, stderr) = scpc(&dir, &["check", "--deny-warnings", "guide.scp"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stderr.contains("6 test case(s)"), "{stderr}");
}
