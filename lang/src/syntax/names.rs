//! Human names for grammar rules, and the bridge from pest's error to our [`SyntaxError`]:
//! "expected a syscall name or `@group`, found `;`" with a hint for the usual mistakes.

use pest::error::{Error, ErrorVariant, InputLocation};

use super::Rule;
use crate::diag::SyntaxError;
use crate::source::Span;

/// What a rule is called in "expected …".
fn rule_name(rule: Rule) -> Option<&'static str> {
    Some(match rule {
        Rule::EOI => "end of file",
        Rule::include | Rule::kw_include => "`include`",
        Rule::const_decl | Rule::kw_const => "`const`",
        Rule::group_decl | Rule::kw_group => "`group`",
        Rule::policy | Rule::kw_policy => "`policy`",
        Rule::test | Rule::kw_test => "`test`",
        Rule::extends | Rule::kw_extends => "`extends`",
        Rule::target_stmt | Rule::kw_target => "`target`",
        Rule::kernel_stmt | Rule::kw_kernel => "`kernel >=`",
        Rule::default_stmt | Rule::kw_default => "`default`",
        Rule::badarch_stmt | Rule::kw_badarch => "`badarch`",
        Rule::newer_stmt | Rule::kw_newer => "`newer`",
        Rule::rule_stmt => "a rule",
        Rule::final_kw => "`final`",
        Rule::syscall_list | Rule::syscall_name => "a syscall name",
        Rule::group_ref => "`@group`",
        Rule::group_name => "a group name",
        Rule::policy_name => "a policy name",
        Rule::action | Rule::act_errno | Rule::act_trap | Rule::act_trace | Rule::act_word | Rule::trap_word => "an action",
        Rule::kw_if => "`if`",
        Rule::cond | Rule::cond_and | Rule::cond_not | Rule::compare => "a condition",
        Rule::operand => "an argument",
        Rule::mask | Rule::band_op => "`&`",
        Rule::cmp_op => "a comparison (`==`, `!=`, `<`, `<=`, `>`, `>=`)",
        Rule::set_op | Rule::kw_in => "`in`",
        Rule::kw_not => "`not in`",
        Rule::set => "`{`",
        Rule::or_op => "`||`",
        Rule::and_op => "`&&`",
        Rule::not_op => "`!`",
        Rule::expr | Rule::and_expr | Rule::shift_expr | Rule::unary_expr => "a number or constant",
        Rule::bor_op => "`|`",
        Rule::shift_op => "`<<`",
        Rule::unary_op => "`~`",
        Rule::number => "a number",
        Rule::version => "a version like `5.4`",
        Rule::ident => "a name",
        Rule::string | Rule::string_inner => "a string",
        Rule::test_on | Rule::kw_on => "`on`",
        Rule::test_case => "a test line",
        Rule::test_args => "`(`",
        Rule::test_arg | Rule::any_value => "an argument value or `*`",
        Rule::expected | Rule::unknown_kw => "an action or `unknown`",
        _ => return None,
    })
}

/// One hint for the most specific thing the parser wanted.
fn hint(positives: &[Rule], found: &str) -> String {
    let wants = |r: &[Rule]| positives.iter().any(|p| r.contains(p));
    if found == ";" {
        return "statements need no `;`: write one per line".into();
    }
    if found.starts_with('=') && !found.starts_with("==") && wants(&[Rule::cmp_op]) {
        return "compare with `==`; `=` only appears in `const` and `group`".into();
    }
    if wants(&[Rule::version]) {
        return "write the kernel version as MAJOR.MINOR, for example `kernel >= 5.4`".into();
    }
    if wants(&[Rule::cmp_op, Rule::set_op]) {
        return "a condition compares an argument: `flags & O_CREAT != 0`, `family in {AF_UNIX, AF_INET}`".into();
    }
    if wants(&[Rule::action, Rule::act_word]) {
        return "actions are allow, log, errno(N), trap, trap(N), trace(N), notify, kill_thread and kill_process".into();
    }
    if wants(&[Rule::syscall_list, Rule::syscall_name, Rule::group_ref]) {
        return "list syscalls by name and groups as `@name`, separated by commas".into();
    }
    if wants(&[Rule::target_stmt, Rule::rule_stmt, Rule::default_stmt]) {
        return "a policy holds `target`, `kernel >=`, `default`, `badarch`, `newer` and rules `[final] ACTION SYSCALLS [if CONDITION]`"
            .into();
    }
    if wants(&[Rule::include, Rule::policy, Rule::const_decl]) {
        return "a file holds `include`, `const`, `group`, `policy` and `test` items".into();
    }
    if wants(&[Rule::test_case, Rule::test_on]) {
        return "a test line reads `name(ARG, ...) -> ACTION`, for example `openat(AT_FDCWD, *, O_RDONLY) -> allow`".into();
    }
    if wants(&[Rule::expr, Rule::unary_expr, Rule::number, Rule::ident]) {
        return "write a number (`42`, `0x1f`, `0o755`), a constant name, or an expression of them with `|`, `&`, `<<`, `~`".into();
    }
    "see the language guide (docs/language.md) for the forms a file may hold".into()
}

/// The token found at `pos`, for "found …": a whole word, or one or two punctuation characters.
fn found_at(text: &str, pos: usize) -> String {
    let rest = text.get(pos..).unwrap_or("");
    let is_word = |c: char| c.is_alphanumeric() || c == '_';
    let token: String = match rest.chars().next() {
        None => String::new(),
        Some(c) if is_word(c) => rest.chars().take_while(|&c| is_word(c)).take(32).collect(),
        Some(_) => rest.chars().take_while(|&c| !c.is_whitespace() && !is_word(c)).take(2).collect(),
    };
    token
}

fn list(names: &[&str]) -> String {
    match names {
        [] => String::new(),
        [one] => one.to_string(),
        [init @ .., last] => format!("{} or {}", init.join(", "), last),
    }
}

/// Turns pest's error into our diagnostic, located in the global offset space.
pub(super) fn syntax_error(err: &Error<Rule>, text: &str, base: u32) -> SyntaxError {
    let pos = match err.location {
        InputLocation::Pos(p) => p,
        InputLocation::Span((s, _)) => s,
    };
    let found = found_at(text, pos);
    let (message, help) = match &err.variant {
        ErrorVariant::ParsingError { positives, .. } => {
            let mut names: Vec<&str> = positives.iter().filter_map(|r| rule_name(*r)).collect();
            names.dedup();
            let mut seen = std::collections::HashSet::new();
            names.retain(|n| seen.insert(*n));
            let expected = if names.is_empty() { "something else".to_string() } else { list(&names) };
            (format!("expected {expected}"), hint(positives, &found))
        }
        ErrorVariant::CustomError { message } => (message.clone(), hint(&[], &found)),
    };
    if found.is_empty() {
        // At the end of the file: point at its last character, which miette can show.
        let unclosed = text.matches('{').count() > text.matches('}').count();
        let help = if unclosed { "a `}` is missing: every `policy`, `test` and `on` block ends with `}`".to_string() } else { help };
        let last = text.trim_end().len().saturating_sub(1) as u32;
        let span = Span::new(base + last, base + last + 1);
        return SyntaxError::Unexpected {
            span: span.into(),
            message: format!("unexpected end of file; {message}"),
            label: "the file ends here".into(),
            help,
        };
    }
    let at = base + pos as u32;
    SyntaxError::Unexpected { span: Span::new(at, at + found.len() as u32).into(), message, label: format!("found `{found}`"), help }
}
