//! Arbitrary text through the whole front end (parse, resolve, type-check, lints, test
//! blocks on the reference interpreter): never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = scpc::check_source("fuzz.scp", text);
});
