use super::*;
use crate::ast::*;

fn parse(text: &str) -> Result<ast::File, String> {
    let mut map = SourceMap::new();
    let id = map.add("t.scp", text);
    let mut diags = Diagnostics::new();
    parse_file(&map, id, &mut diags).ok_or_else(|| format!("{diags:?}"))
}

fn first_rule_cond(text: &str) -> Cond {
    let file = parse(text).expect("parses");
    let Item::Policy(p) = &file.items[0] else { panic!("policy expected") };
    p.stmts
        .iter()
        .find_map(|s| match &s.kind {
            StmtKind::Rule(r) => r.cond.clone(),
            _ => None,
        })
        .expect("a rule with a condition")
}

#[test]
fn the_language_md_example_parses() {
    let text = include_str!("../../../stdlib-policies/examples/web.scp");
    let file = parse(text).expect("the example parses");
    assert_eq!(file.items.len(), 7);
    assert!(file.comments.len() >= 5);
}

#[test]
fn and_binds_tighter_than_or_and_mask_tighter_than_compare() {
    let c = first_rule_cond("policy p { allow x if a & 3 == 1 || b == 2 && c != 0 }");
    let CondKind::Or(lhs, rhs) = c.kind else { panic!("|| at the top") };
    assert!(matches!(lhs.kind, CondKind::Compare { mask: Some(_), op: CmpOp::Eq, .. }));
    assert!(matches!(rhs.kind, CondKind::And(..)));
}

#[test]
fn parenthesized_mask_is_the_same_comparison() {
    let a = first_rule_cond("policy p { allow x if (flags & 3) == 1 }");
    let b = first_rule_cond("policy p { allow x if flags & 3 == 1 }");
    assert!(matches!(a.kind, CondKind::Compare { .. }));
    assert_eq!(crate::fmt::cond(&a, 0), crate::fmt::cond(&b, 0));
}

#[test]
fn kill_is_kill_process_and_keywords_need_word_ends() {
    let file = parse("policy p { kill kill\n allow killer }").expect("parses");
    let Item::Policy(p) = &file.items[0] else { panic!() };
    let StmtKind::Rule(r) = &p.stmts[0].kind else { panic!() };
    assert_eq!(r.action.kind, ActionKind::KillProcess);
    assert!(parse("policy p { allowread }").is_err());
}

#[test]
fn numbers_in_every_radix_and_the_octal_trap() {
    let file = parse("const A = 0x1f | 0o17 | 0b11 | 1_000").expect("parses");
    assert_eq!(file.items.len(), 1);
    let err = parse("const A = 0755").expect_err("ambiguous");
    assert!(err.contains("ambiguous number"), "{err}");
    let err = parse("const A = 99999999999999999999999").expect_err("too big");
    assert!(err.contains("does not fit"), "{err}");
}

#[test]
fn syntax_errors_name_what_was_expected() {
    let err = parse("policy p { allow read;\n}").expect_err("`;` is not a statement");
    assert!(err.contains("no `;`"), "{err}");
    let err = parse("policy p { allow openat if flags = 1 }").expect_err("`=`");
    assert!(err.contains("compare with `==`"), "{err}");
}

#[test]
fn deep_nesting_is_refused_not_overflowed() {
    let text = format!("policy p {{ allow x if {}a == 1{} }}", "(".repeat(5000), ")".repeat(5000));
    let err = parse(&text).expect_err("too deep");
    assert!(err.contains("nesting deeper"), "{err}");
}

#[test]
fn spans_nest_and_stay_in_bounds() {
    let text = include_str!("../../../stdlib-policies/examples/web.scp");
    let mut file = parse(text).expect("parses");
    let whole = file.span;
    for_each_span_mut(&mut file, &mut |s| assert!(whole.contains(*s) && s.lo <= s.hi, "{s:?}"));
}
