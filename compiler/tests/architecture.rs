//! The dependency rules of the workspace, checked on its sources and manifests:
//! - the checker (`sema`) imports nothing of the back end (`bpf`, `codegen`, `verify`,
//!   `artifact`) or of what comes after it (`analysis`, `diff`, `session`, `import`);
//! - the library never reaches into the binary (`src/bin/`), nor uses the binary's crates
//!   (clap, indicatif) or the deployer, which are optional features of the package;
//! - scpc-node depends on no other crate of the workspace (base64, libc, rustix, serde,
//!   serde_json, sha2 only), and the deployer on no compiler crate;
//! - `unsafe` is allowed in one file outside tests: the node's loader.

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Every `.rs` file under `dir`, with its text.
fn sources(dir: &Path) -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())).flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).expect("source");
                out.push((path, text));
            }
        }
    }
    out.sort();
    out
}

/// The lines of `text` that name `crate::MODULE` (in a `use` or a path), comments left out.
fn uses<'a>(text: &'a str, module: &str) -> Vec<&'a str> {
    let needles = [format!("crate::{module}::"), format!("crate::{module};"), format!("crate::{module}}}"), format!("crate::{module},")];
    text.lines().filter(|l| !l.trim_start().starts_with("//")).filter(|l| needles.iter().any(|n| l.contains(n.as_str()))).collect()
}

#[test]
fn sema_imports_nothing_of_the_back_end() {
    let files = sources(&root().join("compiler/src/sema"));
    assert!(files.len() >= 5, "{} files", files.len());
    let mut found = Vec::new();
    for (path, text) in &files {
        for module in ["bpf", "codegen", "verify", "artifact", "analysis", "diff", "session", "import"] {
            for line in uses(text, module) {
                found.push(format!("{}: {}", path.display(), line.trim()));
            }
        }
    }
    assert!(found.is_empty(), "sema reaches into the back end:\n{}", found.join("\n"));
}

#[test]
fn the_library_does_not_use_the_binary_or_its_crates() {
    let src = root().join("compiler/src");
    let mut found = Vec::new();
    for (path, text) in sources(&src) {
        if path.starts_with(src.join("bin")) {
            continue;
        }
        for needle in ["mod bin", "bin/scpc", "clap::", "indicatif::", "scpc_deploy::", "#[derive(Parser", "ValueEnum"] {
            for line in text.lines().filter(|l| !l.trim_start().starts_with("//") && l.contains(needle)) {
                found.push(format!("{}: {}", path.display(), line.trim()));
            }
        }
    }
    assert!(found.is_empty(), "the library depends on the binary's side:\n{}", found.join("\n"));
}

/// The dependency names of one table of a Cargo.toml.
fn deps(manifest: &toml::Value, table: &str) -> Vec<String> {
    manifest.get(table).and_then(|t| t.as_table()).map(|t| t.keys().cloned().collect()).unwrap_or_default()
}

fn manifest(path: &str) -> toml::Value {
    let text = std::fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"));
    toml::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn the_node_crate_stands_alone() {
    let node = manifest("deploy/node/Cargo.toml");
    let mut normal = deps(&node, "dependencies");
    normal.sort();
    assert_eq!(normal, ["base64", "libc", "rustix", "serde", "serde_json", "sha2"], "scpc-node's dependencies");
    for table in ["dev-dependencies", "build-dependencies"] {
        for d in deps(&node, table) {
            assert!(!d.starts_with("scpc"), "scpc-node's {table} name {d}");
        }
    }
    let deployer = manifest("deploy/Cargo.toml");
    for d in deps(&deployer, "dependencies") {
        assert!(d == "scpc-node" || !d.starts_with("scpc"), "the deployer depends on {d}: it must know nothing of the compiler");
    }
    let lang = manifest("lang/Cargo.toml");
    for d in deps(&lang, "dependencies") {
        assert!(!d.starts_with("scpc"), "the language crate depends on {d}");
    }
}

#[test]
fn the_compiler_binary_and_the_deployer_are_optional() {
    let compiler = manifest("compiler/Cargo.toml");
    let dep = |name: &str| compiler["dependencies"][name].get("optional").and_then(toml::Value::as_bool) == Some(true);
    for name in ["clap", "indicatif", "scpc-deploy"] {
        assert!(dep(name), "{name} must be an optional dependency of scpc-compiler (a feature of the binary)");
    }
}

#[test]
fn unsafe_lives_in_the_loader_only() {
    let loader = root().join("deploy/node/src/loader.rs");
    let mut allowed = Vec::new();
    for dir in ["lang/src", "compiler/src", "deploy/src", "deploy/node/src", "stdlib-policies/src"] {
        for (path, text) in sources(&root().join(dir)) {
            if text.contains("allow(unsafe_code)") || text.lines().any(|l| !l.trim_start().starts_with("//") && l.contains("unsafe {")) {
                allowed.push(path);
            }
        }
    }
    assert_eq!(allowed, [loader], "files with unsafe code outside tests");
}
