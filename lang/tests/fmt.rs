//! The formatter keeps meaning and is idempotent: `parse(fmt(x)) == parse(x)` and
//! `fmt(fmt(x)) == fmt(x)`, on every `.scp` file of the repository and on generated policies.

use proptest::prelude::*;
use scpc_lang::ast::File;
use scpc_lang::diag::Diagnostics;
use scpc_lang::fmt::format;
use scpc_lang::source::SourceMap;
use scpc_lang::syntax::parse_file;

fn parse(text: &str) -> Result<File, String> {
    let mut map = SourceMap::new();
    let id = map.add("t.scp", text);
    let mut diags = Diagnostics::new();
    parse_file(&map, id, &mut diags).ok_or_else(|| format!("{diags:?}\n--- text:\n{text}"))
}

/// Formats, re-parses, formats again; returns the first formatting.
fn check_roundtrip(text: &str) -> Result<String, String> {
    let before = parse(text)?;
    let once = format(&before, text, 0);
    let after = parse(&once).map_err(|e| format!("formatted text does not parse: {e}"))?;
    if after.without_spans() != before.without_spans() {
        return Err(format!("formatting changed the meaning:\n--- before:\n{text}\n--- after:\n{once}"));
    }
    let twice = format(&after, &once, 0);
    if twice != once {
        return Err(format!("not idempotent:\n--- once:\n{once}\n--- twice:\n{twice}"));
    }
    let comments = |t: &str| parse(t).map(|f| f.comments.into_iter().map(|c| c.text).collect::<Vec<_>>());
    if comments(text)? != comments(&once)? {
        return Err(format!("comments changed:\n--- before:\n{text}\n--- after:\n{once}"));
    }
    Ok(once)
}

fn scp_files(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read dir").flatten() {
        let path = entry.path();
        let name = entry.file_name();
        if path.is_dir() {
            if name != "target" && name != ".git" {
                scp_files(&path, out);
            }
        } else if path.extension().is_some_and(|e| e == "scp") {
            out.push(path);
        }
    }
}

#[test]
fn every_repository_file_round_trips() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files = Vec::new();
    scp_files(&root, &mut files);
    let mut checked = 0;
    for f in &files {
        let text = std::fs::read_to_string(f).expect("read");
        if parse(&text).is_err() {
            continue; // the bad-input corpus: syntax errors are its point
        }
        check_roundtrip(&text).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        checked += 1;
    }
    assert!(checked >= 40, "only {checked} files checked");
}

#[test]
fn long_lists_wrap_and_comments_stay() {
    let names: Vec<String> = (0..40).map(|i| format!("syscall_number_{i}")).collect();
    let text = format!("# head\ngroup g = {}  # tail\n\n\n\npolicy p {{ # brace\n  allow read   # r\n  # inner\n}}\n", names.join(","));
    let once = check_roundtrip(&text).expect("round trip");
    assert!(once.lines().all(|l| l.len() <= 100 || l.contains('#')), "{once}");
    assert!(once.starts_with("# head\ngroup g = syscall_number_0,"), "{once}");
    assert!(once.contains("\n\npolicy p {  # brace\n    allow read  # r\n    # inner\n}\n"), "{once}");
}

fn ident() -> impl Strategy<Value = String> {
    prop::sample::select(vec!["A", "FLAGS", "O_RDONLY", "AT_FDCWD", "x_1"]).prop_map(str::to_string)
}

fn number() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<u32>().prop_map(|v| v.to_string()),
        any::<u64>().prop_map(|v| format!("{v:#x}")),
        (0u32..4096).prop_map(|v| format!("0o{v:o}")),
        (0u32..64).prop_map(|v| format!("0b{v:b}")),
        Just("0".to_string()),
    ]
}

fn expr() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![number(), ident()];
    leaf.prop_recursive(4, 24, 2, |inner| {
        prop_oneof![
            (inner.clone(), prop::sample::select(vec!["|", "&", "<<", ">>"]), inner.clone()).prop_map(|(a, op, b)| format!("{a} {op} {b}")),
            inner.clone().prop_map(|a| format!("({a})")),
            inner.clone().prop_map(|a| format!("~{a}")),
            inner.prop_map(|a| format!("-{a}")),
        ]
    })
}

fn atom_expr() -> impl Strategy<Value = String> {
    prop_oneof![number(), ident(), expr().prop_map(|e| format!("({e})"))]
}

fn compare() -> impl Strategy<Value = String> {
    let arg = prop::sample::select(vec!["flags", "fd", "arg0", "arg5", "family"]);
    let mask = || prop::option::of(atom_expr());
    let op = prop::sample::select(vec!["==", "!=", "<", "<=", ">", ">="]);
    prop_oneof![
        (arg.clone(), mask(), op, expr()).prop_map(|(a, m, op, v)| match m {
            Some(m) => format!("{a} & {m} {op} {v}"),
            None => format!("{a} {op} {v}"),
        }),
        (arg, mask(), any::<bool>(), prop::collection::vec(expr(), 1..4)).prop_map(|(a, m, neg, set)| {
            let m = m.map(|m| format!(" & {m}")).unwrap_or_default();
            format!("{a}{m} {}in {{{}}}", if neg { "not " } else { "" }, set.join(", "))
        }),
    ]
}

fn cond() -> impl Strategy<Value = String> {
    compare().prop_recursive(4, 16, 2, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{a} && {b}")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{a} || {b}")),
            inner.clone().prop_map(|a| format!("!({a})")),
            inner.prop_map(|a| format!("({a})")),
        ]
    })
}

fn action() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec!["allow", "log", "notify", "kill_thread", "kill_process", "kill", "trap"]).prop_map(str::to_string),
        expr().prop_map(|e| format!("errno({e})")),
        number().prop_map(|e| format!("trap({e})")),
        number().prop_map(|e| format!("trace({e})")),
    ]
}

fn syscalls() -> impl Strategy<Value = String> {
    let member = prop_oneof![
        prop::sample::select(vec!["read", "write", "openat", "kill", "socket"]).prop_map(str::to_string),
        prop::sample::select(vec!["@basic-io", "@io", "@net-server"]).prop_map(str::to_string),
    ];
    prop::collection::vec(member, 1..5).prop_map(|v| v.join(", "))
}

fn comment() -> impl Strategy<Value = String> {
    prop_oneof![Just(String::new()), "[a-z \"#{}]{0,12}".prop_map(|c| format!("  # {c}"))]
}

fn stmt() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::collection::vec(prop::sample::select(vec!["x86_64", "aarch64", "arm"]), 1..3)
            .prop_map(|a| format!("target {}", a.join(", "))),
        (0u16..7, 0u16..20).prop_map(|(a, b)| format!("kernel >= {a}.{b}")),
        action().prop_map(|a| format!("default {a}")),
        action().prop_map(|a| format!("badarch {a}")),
        action().prop_map(|a| format!("newer {a}")),
        (any::<bool>(), action(), syscalls(), prop::option::of(cond())).prop_map(|(f, a, s, c)| {
            let c = c.map(|c| format!(" if {c}")).unwrap_or_default();
            format!("{}{a} {s}{c}", if f { "final " } else { "" })
        }),
    ]
}

fn test_case() -> impl Strategy<Value = String> {
    let arg = prop_oneof![Just("*".to_string()), expr()];
    (
        prop::sample::select(vec!["read", "openat", "open"]),
        prop::option::of(prop::collection::vec(arg, 0..4)),
        prop_oneof![action(), Just("unknown".to_string())],
    )
        .prop_map(|(s, args, e)| match args {
            Some(a) => format!("{s}({}) -> {e}", a.join(", ")),
            None => format!("{s} -> {e}"),
        })
}

fn item() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z/]{1,10}\\.scp".prop_map(|p| format!("include \"{p}\"")),
        (ident(), expr()).prop_map(|(n, e)| format!("const {n} = {e}")),
        (prop::sample::select(vec!["io", "net-server", "g_1"]), syscalls()).prop_map(|(n, s)| format!("group {n} = {s}")),
        (ident(), prop::option::of(ident()), prop::collection::vec((stmt(), comment()), 0..6)).prop_map(|(n, e, body)| {
            let ext = e.map(|e| format!(" extends {e}")).unwrap_or_default();
            let body: Vec<String> = body.into_iter().map(|(s, c)| format!("  {s}{c}\n")).collect();
            format!("policy {n}{ext} {{\n{}}}", body.concat())
        }),
        (ident(), prop::collection::vec((test_case(), comment()), 0..4), prop::option::of(prop::collection::vec(test_case(), 1..3)))
            .prop_map(|(n, cases, on)| {
                let mut body: Vec<String> = cases.into_iter().map(|(t, c)| format!("    {t}{c}\n")).collect();
                if let Some(on) = on {
                    body.push(format!("  on aarch64 {{ {} }}\n", on.join("\n")));
                }
                format!("test {n} {{\n{}}}", body.concat())
            }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn generated_policies_round_trip(items in prop::collection::vec((item(), comment(), prop::sample::select(vec!["\n", "\n\n", "\n\n\n"])), 0..6)) {
        let text: String = items.into_iter().map(|(i, c, sep)| format!("{i}{c}{sep}")).collect();
        if let Err(e) = check_roundtrip(&text) {
            prop_assert!(false, "{}", e);
        }
    }
}
