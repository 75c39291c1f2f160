//! Arbitrary text through the parser and, when it parses, the formatter: no panic, and the
//! formatted text parses to the same tree.
#![no_main]

use libfuzzer_sys::fuzz_target;
use scpc_lang::{diag::Diagnostics, fmt::format, source::SourceMap, syntax::parse_file};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let mut map = SourceMap::new();
    let id = map.add("fuzz.scp", text);
    let Some(file) = parse_file(&map, id, &mut Diagnostics::new()) else { return };
    let formatted = format(&file, text, 0);
    let id2 = map.add("fmt.scp", formatted.as_str());
    let again = parse_file(&map, id2, &mut Diagnostics::new()).expect("formatted text parses");
    assert_eq!(again.without_spans(), file.without_spans());
});
