//! The bad-input corpus, one test per file: every `tests/ui/*.scp` must make `scpc check
//! --deny-warnings` exit 1 without panicking, and report exactly the diagnostics its comments
//! announce, on their lines (`# error[CODE]`, `# warning[CODE]`), each with a file, line,
//! column and help. The rendered report of each file is pinned by an insta snapshot
//! (`tests/snapshots/ui__NAME.snap`). A failing fixture hides no other: each is its own test.

mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use libtest_mimic::{Arguments, Failed, Trial};
use support::scpc_in as scpc;

/// (file, severity, code, line) announced in the file's comments.
fn expectations(file: &str, text: &str) -> Result<BTreeSet<(String, String, String, usize)>, Failed> {
    let mut out = BTreeSet::new();
    for (i, line) in text.lines().enumerate() {
        for sev in ["error", "warning"] {
            let tag = format!("# {sev}[");
            let mut rest = line;
            while let Some(pos) = rest.find(&tag) {
                rest = &rest[pos + tag.len()..];
                let end = rest.find(']').ok_or_else(|| format!("{file}:{}: an annotation closes with ]", i + 1))?;
                out.insert((file.to_string(), sev.to_string(), rest[..end].to_string(), i + 1));
            }
        }
    }
    Ok(out)
}

fn ui_dir() -> PathBuf {
    support::tests_dir().join("ui")
}

/// The fixtures, sorted.
fn fixtures() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(ui_dir())
        .expect("tests/ui")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".scp"))
        .collect();
    names.sort();
    names
}

/// One fixture: its diagnostics are the announced ones, each located and with help; its
/// human report matches the snapshot.
fn check_fixture(name: &str) -> Result<(), Failed> {
    let dir = ui_dir();
    let text = std::fs::read_to_string(dir.join(name)).map_err(|e| format!("{name}: {e}"))?;
    let mut expected = expectations(name, &text)?;
    let (code, stdout, stderr) = scpc(&dir, &["check", "--deny-warnings", "--message-format", "json", name]);
    if code != 1 || stderr.contains("panicked") {
        return Err(format!("{name}: exit status {code}\n{stdout}{stderr}").into());
    }
    let mut found = BTreeSet::new();
    for line in stdout.lines() {
        let d: serde_json::Value = serde_json::from_str(line).map_err(|e| format!("{name}: not one JSON object per line: {e}: {line}"))?;
        let file = d["file"].as_str().unwrap_or_default();
        let (l, c) = (d["line"].as_u64().unwrap_or(0), d["column"].as_u64().unwrap_or(0));
        if file.is_empty() || l == 0 || c == 0 {
            return Err(format!("{name}: unlocated diagnostic {d}").into());
        }
        if d["help"].as_str().is_none_or(str::is_empty) {
            return Err(format!("{name}: no help in {d}").into());
        }
        let sev = d["severity"].as_str().unwrap_or_default().to_string();
        let dcode = d["code"].as_str().unwrap_or_default().to_string();
        found.insert((file.to_string(), sev, dcode, l as usize));
    }
    // a diagnostic in an included file (an include cycle) is announced in that file
    let others: BTreeSet<String> = found.iter().map(|f| f.0.clone()).filter(|f| f != name).collect();
    for other in others {
        let text = std::fs::read_to_string(dir.join(&other)).map_err(|e| format!("{other}: {e}"))?;
        expected.extend(expectations(&other, &text)?);
    }
    if expected.is_empty() {
        return Err(format!("{name} announces no diagnostic").into());
    }
    if found != expected {
        return Err(format!("{name}: diagnostics (file, severity, code, line) differ from the annotations\nfound    {found:?}\nexpected {expected:?}\n{stdout}").into());
    }
    let (_, _, human) = scpc(&dir, &["check", "--deny-warnings", name]);
    insta::assert_snapshot!(name.trim_end_matches(".scp"), human);
    Ok(())
}

/// The corpus is large and covers many diagnostic kinds (each kind announced by some file).
fn the_corpus_covers_the_diagnostics() -> Result<(), Failed> {
    let names = fixtures();
    if names.len() < 40 {
        return Err(format!("the corpus has {} files", names.len()).into());
    }
    let mut codes = BTreeSet::new();
    for name in &names {
        let text = std::fs::read_to_string(ui_dir().join(name)).map_err(|e| format!("{name}: {e}"))?;
        codes.extend(expectations(name, &text)?.into_iter().map(|(_, _, code, _)| code));
    }
    if codes.len() < 40 {
        return Err(format!("the corpus covers {} diagnostic kinds: {codes:?}", codes.len()).into());
    }
    Ok(())
}

fn the_language_example_is_accepted() -> Result<(), Failed> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../stdlib-policies/examples");
    let (code, stdout, stderr) = scpc(&dir, &["check", "web.scp"]);
    if code != 0 || !stderr.contains("13 test case(s)") {
        return Err(format!("exit {code}\n{stdout}{stderr}").into());
    }
    Ok(())
}

fn a_missing_root_file_is_an_io_failure() -> Result<(), Failed> {
    let (code, _, stderr) = scpc(Path::new("."), &["check", "/nonexistent/x.scp"]);
    if code != 2 || !stderr.contains("cannot read `/nonexistent/x.scp`: no such file") {
        return Err(format!("exit {code}: {stderr}").into());
    }
    Ok(())
}

fn the_guide_first_example_is_clean() -> Result<(), Failed> {
    let guide = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/language.md")).map_err(|e| e.to_string())?;
    let block = guide.split("```\n").nth(1).ok_or("docs/language.md has no code block")?;
    let dir = std::env::temp_dir().join(format!("scpc-guide-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    std::fs::write(dir.join("guide.scp"), block).map_err(|e| e.to_string())?;
    let (code, stdout, stderr) = scpc(&dir, &["check", "--deny-warnings", "guide.scp"]);
    if code != 0 || !stderr.contains("6 test case(s)") {
        return Err(format!("exit {code}\n{stdout}{stderr}").into());
    }
    Ok(())
}

fn main() {
    let mut trials: Vec<Trial> = fixtures()
        .into_iter()
        .map(|name| Trial::test(format!("fixture::{}", name.trim_end_matches(".scp")), move || check_fixture(&name)))
        .collect();
    trials.extend([
        Trial::test("the_corpus_covers_the_diagnostics", the_corpus_covers_the_diagnostics),
        Trial::test("the_language_example_is_accepted", the_language_example_is_accepted),
        Trial::test("a_missing_root_file_is_an_io_failure", a_missing_root_file_is_an_io_failure),
        Trial::test("the_guide_first_example_is_clean", the_guide_first_example_is_clean),
    ]);
    libtest_mimic::run(&Arguments::from_args(), trials).exit();
}
