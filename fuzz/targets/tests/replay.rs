//! Replays every file of every fuzz corpus through its target's body on the stable toolchain:
//! the seeds (`fuzz/seeds/TARGET/`, among them each crash found and fixed, as its regression
//! test) and, where present, what a campaign grew (`fuzz/corpus/TARGET/`, not committed).

use std::path::Path;

#[test]
fn every_corpus_file_passes_its_target() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut total = 0;
    for (name, target) in scpc_fuzz_targets::TARGETS {
        let seeds: Vec<_> =
            std::fs::read_dir(root.join("seeds").join(name)).expect("every target has seeds").flatten().map(|e| e.path()).collect();
        assert!(!seeds.is_empty(), "no seeds for {name}");
        let grown = std::fs::read_dir(root.join("corpus").join(name)).into_iter().flatten().flatten().map(|e| e.path());
        let mut files: Vec<_> = seeds.into_iter().chain(grown).collect();
        files.sort();
        for f in &files {
            let Ok(data) = std::fs::read(f) else { continue };
            if let Err(e) = std::panic::catch_unwind(|| target(&data)) {
                panic!("{}: {:?}", f.display(), e.downcast_ref::<String>());
            }
        }
        println!("{name}: {} files", files.len());
        total += files.len();
    }
    println!("{total} corpus files replayed");
}
