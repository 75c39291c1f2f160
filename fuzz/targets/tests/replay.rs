//! Replays every file of every fuzz corpus through its target's body on the stable toolchain:
//! the seeds (`fuzz/seeds/TARGET/`, among them each crash found and fixed, as its regression
//! test) and what the campaigns found interesting, minimized (`fuzz/corpus/TARGET/`).

use std::path::Path;

#[test]
fn every_corpus_file_passes_its_target() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../corpus");
    let mut total = 0;
    for (name, target) in scpc_fuzz_targets::TARGETS {
        let dir = root.join(name);
        let mut files: Vec<_> =
            std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())).flatten().map(|e| e.path()).collect();
        files.sort();
        assert!(!files.is_empty(), "corpus {name} is empty");
        for f in &files {
            let data = std::fs::read(f).expect("corpus file");
            if let Err(e) = std::panic::catch_unwind(|| target(&data)) {
                panic!("{}: {:?}", f.display(), e.downcast_ref::<String>());
            }
        }
        println!("{name}: {} files", files.len());
        total += files.len();
    }
    println!("{total} corpus files replayed");
}
