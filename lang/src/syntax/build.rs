//! pest pairs to the owned [`crate::ast`]: one method per grammar rule. Grammar invariants are
//! `expect`ed with the rule they rely on; input errors the grammar lets through (numbers out of
//! range, ambiguous octal) become diagnostics.

use pest::iterators::Pair;

use super::{Rule, MAX_DEPTH};
use crate::ast::*;
use crate::diag::{Diagnostics, SyntaxError};
use crate::source::Span;

type P<'i> = Pair<'i, Rule>;

pub(super) struct Builder<'d, 't> {
    pub base: u32,
    /// The file's text, to trim spans.
    pub text: &'t str,
    /// Local end offset -> local start offset of each comment, to trim spans.
    pub comment_ends: std::collections::HashMap<usize, usize>,
    pub diags: &'d mut Diagnostics,
    pub errors: usize,
}

fn is_keyword(rule: Rule) -> bool {
    matches!(
        rule,
        Rule::kw_include
            | Rule::kw_const
            | Rule::kw_group
            | Rule::kw_policy
            | Rule::kw_extends
            | Rule::kw_target
            | Rule::kw_kernel
            | Rule::kw_default
            | Rule::kw_badarch
            | Rule::kw_newer
            | Rule::kw_if
            | Rule::kw_in
            | Rule::kw_not
            | Rule::kw_test
            | Rule::kw_on
            | Rule::trap_word
            | Rule::EOI
    )
}

/// The children of a pair, keywords left out.
fn kids(pair: P<'_>) -> impl Iterator<Item = P<'_>> {
    pair.into_inner().filter(|p| !is_keyword(p.as_rule()))
}

impl Builder<'_, '_> {
    /// The pair's span without the blanks and comments pest skips after its last token.
    fn span(&self, pair: &P<'_>) -> Span {
        let s = pair.as_span();
        let (start, mut end) = (s.start(), s.end());
        while end > start {
            if self.text.as_bytes()[end - 1].is_ascii_whitespace() {
                end -= 1;
            } else if let Some(&lo) = self.comment_ends.get(&end) {
                end = lo.max(start);
            } else {
                break;
            }
        }
        Span::new(self.base + start as u32, self.base + end as u32)
    }

    fn ident(&self, pair: P<'_>) -> Ident {
        Ident { name: pair.as_str().to_string(), span: self.span(&pair) }
    }

    pub fn file(&mut self, pair: P<'_>) -> Vec<Item> {
        kids(pair).map(|p| self.item(p)).collect()
    }

    fn item(&mut self, pair: P<'_>) -> Item {
        let span = self.span(&pair);
        match pair.as_rule() {
            Rule::include => {
                let string = kids(pair).next().expect("grammar: include has a string");
                let path_span = self.span(&string);
                let inner = string.into_inner().next().expect("grammar: string has string_inner");
                Item::Include(Include { path: unescape(inner.as_str()), path_span, span })
            }
            Rule::const_decl => {
                let mut k = kids(pair);
                let name = self.ident(k.next().expect("grammar: const has a name"));
                let value = self.expr(k.next().expect("grammar: const has a value"));
                Item::Const(ConstDecl { name, value, span })
            }
            Rule::group_decl => {
                let mut k = kids(pair);
                let name = self.ident(k.next().expect("grammar: group has a name"));
                let members = self.syscall_list(k.next().expect("grammar: group has members"));
                Item::Group(GroupDecl { name, members, span })
            }
            Rule::policy => Item::Policy(self.policy(pair)),
            Rule::test => Item::Test(self.test(pair)),
            other => unreachable!("grammar: item is never {other:?}"),
        }
    }

    fn policy(&mut self, pair: P<'_>) -> PolicyDecl {
        let span = self.span(&pair);
        let mut name = None;
        let mut extends = None;
        let mut stmts = Vec::new();
        for p in kids(pair) {
            match p.as_rule() {
                Rule::policy_name => name = Some(self.ident(p)),
                Rule::extends => extends = kids(p).next().map(|i| self.ident(i)),
                _ => stmts.push(self.stmt(p)),
            }
        }
        PolicyDecl { name: name.expect("grammar: policy has a name"), extends, stmts, span }
    }

    fn stmt(&mut self, pair: P<'_>) -> Stmt {
        let span = self.span(&pair);
        let rule = pair.as_rule();
        let kind = match rule {
            Rule::target_stmt => StmtKind::Target(kids(pair).map(|p| self.ident(p)).collect()),
            Rule::kernel_stmt => StmtKind::Kernel(self.version(kids(pair).next().expect("grammar: kernel has a version"))),
            Rule::default_stmt | Rule::badarch_stmt | Rule::newer_stmt => {
                let action = self.action(kids(pair).next().expect("grammar: statement has an action"));
                match rule {
                    Rule::default_stmt => StmtKind::Default(action),
                    Rule::badarch_stmt => StmtKind::BadArch(action),
                    _ => StmtKind::Newer(action),
                }
            }
            Rule::rule_stmt => StmtKind::Rule(self.rule(pair)),
            other => unreachable!("grammar: statement is never {other:?}"),
        };
        Stmt { kind, span }
    }

    fn version(&mut self, pair: P<'_>) -> Version {
        let span = self.span(&pair);
        let (major, minor) = pair.as_str().split_once('.').expect("grammar: version has a dot");
        match (major.parse(), minor.parse()) {
            (Ok(major), Ok(minor)) => Version { major, minor, span },
            _ => {
                self.error(SyntaxError::BadVersion { span: span.into(), text: pair.as_str().to_string() });
                Version { major: 0, minor: 0, span }
            }
        }
    }

    fn rule(&mut self, pair: P<'_>) -> Rule_ {
        let mut final_span = None;
        let mut action = None;
        let mut syscalls = Vec::new();
        let mut cond = None;
        let mut archs = Vec::new();
        for p in kids(pair) {
            match p.as_rule() {
                Rule::final_kw => final_span = Some(self.span(&p)),
                Rule::rule_archs => archs = kids(p).map(|a| self.ident(a)).collect(),
                Rule::action => action = Some(self.action(p)),
                Rule::syscall_list => syscalls = self.syscall_list(p),
                Rule::cond => cond = Some(self.cond(p)),
                other => unreachable!("grammar: rule never holds {other:?}"),
            }
        }
        Rule_ { final_span, action: action.expect("grammar: rule has an action"), syscalls, archs, cond }
    }

    fn syscall_list(&mut self, pair: P<'_>) -> Vec<SyscallRef> {
        kids(pair)
            .map(|p| match p.as_rule() {
                Rule::group_ref => {
                    let span = self.span(&p);
                    let name = p.into_inner().next().expect("grammar: group_ref has a name");
                    SyscallRef::Group(Ident { name: name.as_str().to_string(), span })
                }
                _ => SyscallRef::Syscall(self.ident(p)),
            })
            .collect()
    }

    fn action(&mut self, pair: P<'_>) -> Action {
        let span = self.span(&pair);
        let inner = kids(pair).next().expect("grammar: action has one alternative");
        let rule = inner.as_rule();
        let text = inner.as_str();
        let data = kids(inner).next().map(|e| self.expr(e));
        let kind = match rule {
            Rule::act_errno => ActionKind::Errno,
            Rule::act_trap => ActionKind::Trap,
            Rule::act_trace => ActionKind::Trace,
            _ => match text {
                "allow" => ActionKind::Allow,
                "log" => ActionKind::Log,
                "notify" => ActionKind::Notify,
                "kill_thread" => ActionKind::KillThread,
                "kill_process" | "kill" => ActionKind::KillProcess,
                other => unreachable!("grammar: act_word is never {other}"),
            },
        };
        Action { kind, data, span }
    }

    fn cond(&mut self, pair: P<'_>) -> Cond {
        self.cond_d(pair).0
    }

    /// A condition and its depth (operators on the longest path, comparisons included).
    fn cond_d(&mut self, pair: P<'_>) -> (Cond, usize) {
        match pair.as_rule() {
            Rule::cond | Rule::cond_and => {
                let is_or = pair.as_rule() == Rule::cond;
                let mut k = kids(pair).filter(|p| !matches!(p.as_rule(), Rule::or_op | Rule::and_op));
                let (mut acc, mut depth) = self.cond_d(k.next().expect("grammar: cond has an operand"));
                for p in k {
                    let (rhs, rhs_depth) = self.cond_d(p);
                    let span = acc.span.to(rhs.span);
                    depth = depth.max(rhs_depth) + 1;
                    if depth > MAX_DEPTH {
                        return (self.too_deep_cond(span), 1);
                    }
                    let (lhs, rhs) = (Box::new(acc), Box::new(rhs));
                    let kind = if is_or { CondKind::Or(lhs, rhs) } else { CondKind::And(lhs, rhs) };
                    acc = Cond { kind, span };
                }
                (acc, depth)
            }
            Rule::cond_not => {
                let span = self.span(&pair);
                let mut k = kids(pair).peekable();
                let first = k.next().expect("grammar: cond_not has a child");
                match first.as_rule() {
                    Rule::not_op => {
                        let (inner, depth) = self.cond_d(k.next().expect("grammar: ! has an operand"));
                        if depth + 1 > MAX_DEPTH {
                            return (self.too_deep_cond(span), 1);
                        }
                        (Cond { kind: CondKind::Not(Box::new(inner)), span }, depth + 1)
                    }
                    _ => {
                        let (mut c, depth) = self.cond_d(first);
                        c.span = span; // keep the parentheses in the span
                        (c, depth)
                    }
                }
            }
            Rule::compare => self.compare(pair),
            other => unreachable!("grammar: condition is never {other:?}"),
        }
    }

    /// Reports a condition past [`MAX_DEPTH`] and stands in for it.
    fn too_deep_cond(&mut self, span: Span) -> Cond {
        self.error(SyntaxError::TooLong { span: Span::new(span.lo, span.lo + 1).into(), max: MAX_DEPTH });
        let arg = Ident { name: "arg0".into(), span };
        let value = Expr { kind: ExprKind::Number(Number { value: 0, radix: 10 }), span };
        Cond { kind: CondKind::Compare { arg, mask: None, op: CmpOp::Eq, value }, span }
    }

    fn compare(&mut self, pair: P<'_>) -> (Cond, usize) {
        let span = self.span(&pair);
        let mut k = kids(pair);
        let operand = k.next().expect("grammar: compare has an operand");
        let mut ok = kids(operand);
        let arg = self.ident(ok.next().expect("grammar: operand has an argument"));
        let mut depth = 1;
        let mask = ok.next().map(|m| {
            let (e, d) = self.expr_d(kids(m).next().expect("grammar: mask has an expr"));
            depth = depth.max(d + 1);
            e
        });
        let op = k.next().expect("grammar: compare has an operator");
        let rhs = k.next().expect("grammar: compare has a right side");
        let kind = match op.as_rule() {
            Rule::cmp_op => {
                let op = match op.as_str() {
                    "==" => CmpOp::Eq,
                    "!=" => CmpOp::Ne,
                    "<=" => CmpOp::Le,
                    ">=" => CmpOp::Ge,
                    "<" => CmpOp::Lt,
                    _ => CmpOp::Gt,
                };
                let (value, d) = self.expr_d(rhs);
                depth = depth.max(d + 1);
                CondKind::Compare { arg, mask, op, value }
            }
            _ => {
                let negated = op.as_str().starts_with("not");
                let mut set = Vec::new();
                for e in kids(rhs) {
                    let (e, d) = self.expr_d(e);
                    depth = depth.max(d + 1);
                    set.push(e);
                }
                CondKind::In { arg, mask, negated, set }
            }
        };
        if depth > MAX_DEPTH {
            return (self.too_deep_cond(span), 1);
        }
        (Cond { kind, span }, depth)
    }

    fn expr(&mut self, pair: P<'_>) -> Expr {
        self.expr_d(pair).0
    }

    /// An expression and its depth (operators on the longest path; a chain `a | b | c` counts
    /// each operator, because the tree built from it is that deep).
    fn expr_d(&mut self, pair: P<'_>) -> (Expr, usize) {
        let span = self.span(&pair);
        match pair.as_rule() {
            Rule::expr | Rule::and_expr | Rule::shift_expr => {
                let mut k = kids(pair);
                let (mut acc, mut depth) = self.expr_d(k.next().expect("grammar: expression has an operand"));
                while let Some(op) = k.next() {
                    let op = match op.as_str() {
                        "|" => BinaryOp::Or,
                        "&" => BinaryOp::And,
                        "<<" => BinaryOp::Shl,
                        _ => BinaryOp::Shr,
                    };
                    let (rhs, rhs_depth) = self.expr_d(k.next().expect("grammar: operator has a right side"));
                    let span = acc.span.to(rhs.span);
                    depth = depth.max(rhs_depth) + 1;
                    if depth > MAX_DEPTH {
                        return (self.too_deep_expr(span), 1);
                    }
                    acc = Expr { kind: ExprKind::Binary(op, Box::new(acc), Box::new(rhs)), span };
                }
                (acc, depth)
            }
            Rule::unary_expr => {
                let mut k = kids(pair);
                let first = k.next().expect("grammar: unary_expr has a child");
                if first.as_rule() == Rule::unary_op {
                    let op = if first.as_str() == "~" { UnaryOp::BitNot } else { UnaryOp::Neg };
                    let (inner, depth) = self.expr_d(k.next().expect("grammar: unary operator has an operand"));
                    if depth + 1 > MAX_DEPTH {
                        return (self.too_deep_expr(span), 1);
                    }
                    (Expr { kind: ExprKind::Unary(op, Box::new(inner)), span }, depth + 1)
                } else {
                    let (mut e, depth) = self.expr_d(first);
                    e.span = span;
                    (e, depth)
                }
            }
            Rule::number => (Expr { kind: ExprKind::Number(self.number(pair)), span }, 1),
            Rule::ident => (Expr { kind: ExprKind::Name(self.ident(pair)), span }, 1),
            other => unreachable!("grammar: expression is never {other:?}"),
        }
    }

    /// Reports an expression past [`MAX_DEPTH`] and stands in for it.
    fn too_deep_expr(&mut self, span: Span) -> Expr {
        self.error(SyntaxError::TooLong { span: Span::new(span.lo, span.lo + 1).into(), max: MAX_DEPTH });
        Expr { kind: ExprKind::Number(Number { value: 0, radix: 10 }), span }
    }

    fn number(&mut self, pair: P<'_>) -> Number {
        let text = pair.as_str();
        let span = self.span(&pair);
        let lower = text.to_ascii_lowercase();
        let (radix, digits) = match lower.get(..2) {
            Some("0x") => (16, &lower[2..]),
            Some("0o") => (8, &lower[2..]),
            Some("0b") => (2, &lower[2..]),
            _ => (10, lower.as_str()),
        };
        let digits: String = digits.chars().filter(|&c| c != '_').collect();
        if radix == 10 && digits.len() > 1 && digits.starts_with('0') {
            self.error(SyntaxError::AmbiguousOctal {
                span: span.into(),
                text: text.to_string(),
                digits: digits.trim_start_matches('0').to_string(),
            });
            return Number { value: 0, radix };
        }
        match u64::from_str_radix(&digits, radix) {
            Ok(value) => Number { value, radix },
            Err(_) => {
                self.error(SyntaxError::NumberTooLarge { span: span.into(), text: text.to_string() });
                Number { value: 0, radix }
            }
        }
    }

    fn test(&mut self, pair: P<'_>) -> TestDecl {
        let span = self.span(&pair);
        let mut k = kids(pair);
        let policy = self.ident(k.next().expect("grammar: test names a policy"));
        let items = k
            .map(|p| match p.as_rule() {
                Rule::test_on => {
                    let span = self.span(&p);
                    let mut k = kids(p);
                    let arch = self.ident(k.next().expect("grammar: on names an arch"));
                    TestItem::On { arch, cases: k.map(|c| self.test_case(c)).collect(), span }
                }
                _ => TestItem::Case(self.test_case(p)),
            })
            .collect();
        TestDecl { policy, items, span }
    }

    fn test_case(&mut self, pair: P<'_>) -> TestCase {
        let span = self.span(&pair);
        let mut syscall = None;
        let mut args = None;
        let mut expected = None;
        for p in kids(pair) {
            match p.as_rule() {
                Rule::syscall_name => syscall = Some(self.ident(p)),
                Rule::test_args => {
                    let list = kids(p)
                        .map(|a| {
                            let inner = kids(a).next().expect("grammar: test_arg has a child");
                            match inner.as_rule() {
                                Rule::any_value => TestArg::Any(self.span(&inner)),
                                _ => TestArg::Value(self.expr(inner)),
                            }
                        })
                        .collect();
                    args = Some(list);
                }
                _ => {
                    let inner = kids(p).next().expect("grammar: expected has a child");
                    expected = Some(match inner.as_rule() {
                        Rule::unknown_kw => Expected::Unknown(self.span(&inner)),
                        _ => Expected::Action(self.action(inner)),
                    });
                }
            }
        }
        TestCase {
            syscall: syscall.expect("grammar: test case names a syscall"),
            args,
            expected: expected.expect("grammar: test case has an expectation"),
            span,
        }
    }

    fn error(&mut self, e: SyntaxError) {
        self.errors += 1;
        self.diags.push(e);
    }
}

type Rule_ = crate::ast::Rule;

/// Resolves `\"`, `\\`, `\n` and `\t` in a string literal's text; other escapes stay as written.
fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some(other) => out.push(other),
                None => out.push('\\'),
            }
        } else {
            out.push(c);
        }
    }
    out
}
