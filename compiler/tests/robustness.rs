//! No input makes the front end panic: mutated versions of every corpus file (tokens
//! inserted, deleted or swapped at random places) go through the whole checker and, when they
//! parse, through the formatter.

use proptest::prelude::*;

fn corpus() -> Vec<String> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut texts = vec![std::fs::read_to_string(root.join("../stdlib-policies/examples/web.scp")).expect("example")];
    for e in std::fs::read_dir(root.join("tests/ui")).expect("ui").flatten() {
        if let Ok(t) = std::fs::read_to_string(e.path()) {
            texts.push(t);
        }
    }
    texts
}

const TOKENS: &[&str] = &[
    "{",
    "}",
    "(",
    ")",
    ",",
    "@",
    "#",
    "\"",
    "->",
    "&",
    "&&",
    "||",
    "!",
    "==",
    "<",
    "~",
    "-",
    "0",
    "0x",
    "4095",
    "18446744073709551615",
    "arg9",
    "if",
    "in",
    "not",
    "final",
    "policy",
    "extends",
    "test",
    "on",
    "group",
    "const",
    "include",
    "allow",
    "errno(",
    "trap(",
    "kernel >= 99.99",
    "target",
    "x32",
    "i386",
    "arm",
    "unknown",
    "*",
    "\n",
    " ",
    "é",
    "\u{0}",
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn mutated_inputs_never_panic(
        file in any::<prop::sample::Index>(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<prop::sample::Index>(), 0u8..3), 1..6),
    ) {
        let texts = corpus();
        let mut text = texts[file.index(texts.len())].clone();
        for (at, tok, kind) in edits {
            let mut pos = at.index(text.len() + 1);
            while !text.is_char_boundary(pos) {
                pos -= 1;
            }
            let tok = TOKENS[tok.index(TOKENS.len())];
            match kind {
                0 => text.insert_str(pos, tok),
                1 => {
                    let mut end = (pos + tok.len()).min(text.len());
                    while !text.is_char_boundary(end) {
                        end += 1;
                    }
                    text.replace_range(pos..end, "");
                }
                _ => {
                    let mut end = (pos + 3).min(text.len());
                    while !text.is_char_boundary(end) {
                        end += 1;
                    }
                    text.replace_range(pos..end, tok);
                }
            }
        }
        let (_checked, diags, map) = scpc::check_source("m.scp", &text);
        let items = diags.into_sorted();
        let _ = scpc::report::render_human(&items, &map, false, 100);
        let _ = scpc::report::render_json(&items, &map);
        let mut map = scpc_lang::source::SourceMap::new();
        let id = map.add("m.scp", text.as_str());
        if let Some(file) = scpc_lang::syntax::parse_file(&map, id, &mut scpc_lang::diag::Diagnostics::new()) {
            let _ = scpc_lang::fmt::format(&file, &text, 0);
        }
    }
}
