//! See `scpc_fuzz_targets::seccompiler`: the body lives there so that `cargo test` replays the corpus.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| scpc_fuzz_targets::seccompiler(data));
