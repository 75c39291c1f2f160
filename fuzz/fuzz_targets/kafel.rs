//! See `scpc_fuzz_targets::kafel`: the body lives there so that `cargo test` replays the corpus.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| scpc_fuzz_targets::kafel(data));
