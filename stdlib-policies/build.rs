//! Embeds every `*.scp` file below this directory (except `src/` and `target/`) into a table
//! of (path below `std/`, text), so that `include "std/..."` works without the source tree.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn collect(dir: &Path, root: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        if path.is_dir() {
            if name != "src" && name != "target" {
                collect(&path, root, out);
            }
        } else if path.extension().is_some_and(|e| e == "scp") {
            out.push(path.strip_prefix(root).expect("below root").to_path_buf());
        }
    }
}

fn main() {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    collect(&root, &root, &mut files);
    files.sort();
    let mut code =
        String::from("/// (path below `std/`, text) of every bundled file, sorted by path.\npub static FILES: &[(&str, &str)] = &[\n");
    for f in &files {
        let rel = f.to_string_lossy().replace('\\', "/");
        writeln!(code, "    ({rel:?}, include_str!({:?})),", root.join(f).to_string_lossy()).expect("write to String");
    }
    code.push_str("];\n");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("files.rs");
    std::fs::write(out, code).expect("write OUT_DIR/files.rs");
    println!("cargo:rerun-if-changed=.");
}
