//! The canonical printer behind `scpc fmt`: four-space indentation, one statement per line,
//! single spaces around operators, the fewest parentheses that keep the tree, lists wrapped
//! at 100 columns, and every comment kept. Comments stay where they were relative to items and
//! statements: a comment on a line of its own stays before the next item, one at the end of a
//! line stays at the end of it; a comment inside a multi-line statement moves above it.
//! Blank lines between items are kept (several collapse to one).
//!
//! `format(parse(x))` parses to the same tree as `x`, and formatting is idempotent.

use crate::ast::*;
use crate::source::Span;

const WIDTH: usize = 100;

/// Formats a parsed file. `text` is the file's source and `base` its offset in the source map.
pub fn format(file: &File, text: &str, base: u32) -> String {
    let mut p = Printer { text, base, comments: &file.comments, next: 0, out: String::new(), last_end: None, trailing_lines: Vec::new() };
    let mut prev_block = false;
    for item in &file.items {
        let block = matches!(item, Item::Policy(_) | Item::Test(_));
        let force_blank = p.last_end.is_some() && (block || prev_block);
        // a block's inner comments stay inside it; any other item's move above it
        let limit = if block { item.span().lo } else { item.span().hi };
        p.leading(item.span(), limit, 0, force_blank);
        match item {
            Item::Include(x) => p.line(0, &format!("include {}", quote(&x.path)), x.span),
            Item::Const(x) => p.line(0, &format!("const {} = {}", x.name.name, expr(&x.value, 0)), x.span),
            Item::Group(x) => p.list_line(0, &format!("group {} =", x.name.name), &x.members, "", x.span),
            Item::Policy(x) => p.policy(x),
            Item::Test(x) => p.test(x),
        }
        prev_block = block;
    }
    p.rest_of_comments(0, file.span.hi);
    align_trailing(&p.out, &p.trailing_lines)
}

/// Aligns the trailing comments of consecutive lines of the same indentation to one column
/// (as gofmt does): two spaces after the longest code of the run.
fn align_trailing(out: &str, trailing: &[(usize, usize)]) -> String {
    let mut lines: Vec<String> = out.lines().map(str::to_string).collect();
    let indents: Vec<usize> = lines.iter().map(|l| l.len() - l.trim_start().len()).collect();
    let indent = |line: usize| indents[line];
    let mut i = 0;
    while i < trailing.len() {
        let mut j = i + 1;
        while j < trailing.len() && trailing[j].0 == trailing[j - 1].0 + 1 && indent(trailing[j].0) == indent(trailing[i].0) {
            j += 1;
        }
        let column = trailing[i..j].iter().map(|&(_, code)| code).max().unwrap_or(0) + 2;
        for &(line, code) in &trailing[i..j] {
            let (head, comment) = lines[line].split_at(code);
            lines[line] = format!("{head}{}{}", " ".repeat(column - code), comment.trim_start());
        }
        i = j;
    }
    let mut text = lines.join("\n");
    text.push('\n');
    text
}

struct Printer<'a> {
    text: &'a str,
    base: u32,
    comments: &'a [Comment],
    next: usize,
    out: String,
    last_end: Option<u32>,
    /// (line index, length of its code) of every line given a trailing comment.
    trailing_lines: Vec<(usize, usize)>,
}

impl Printer<'_> {
    fn src(&self, lo: u32, hi: u32) -> &str {
        let (lo, hi) = ((lo.saturating_sub(self.base)) as usize, (hi.saturating_sub(self.base)) as usize);
        self.text.get(lo.min(hi)..hi).unwrap_or("")
    }

    /// Whether the source has a blank line between the last thing printed and `lo`.
    fn blank_before(&self, lo: u32) -> bool {
        self.last_end.is_some_and(|end| self.src(end, lo).matches('\n').count() >= 2)
    }

    fn push_line(&mut self, indent: usize, s: &str) {
        for _ in 0..indent {
            self.out.push_str("    ");
        }
        self.out.push_str(s);
        self.out.push('\n');
    }

    /// Prints the comments that start before `limit`, on lines of their own, after a blank
    /// line where the source had one; then the blank line before `span`, if any.
    fn leading(&mut self, span: Span, limit: u32, indent: usize, force_blank: bool) {
        let mut first = true;
        while let Some(c) = self.comments.get(self.next).filter(|c| c.span.lo < limit) {
            if (first && force_blank) || self.blank_before(c.span.lo) {
                self.out.push('\n');
            }
            first = false;
            self.push_line(indent, &format!("#{}", c.text));
            self.last_end = Some(c.span.hi);
            self.next += 1;
        }
        if (first && force_blank) || self.blank_before(span.lo) {
            self.out.push('\n');
        }
    }

    /// Appends the comment that starts on the same line as `end`, if any, to the last line.
    fn trailing(&mut self, end: u32) {
        if let Some(c) = self.comments.get(self.next) {
            if !self.src(end, c.span.lo).contains('\n') {
                self.out.pop();
                let line_start = self.out.rfind('\n').map_or(0, |i| i + 1);
                self.trailing_lines.push((self.out.matches('\n').count(), self.out.len() - line_start));
                self.out.push_str(&format!("  #{}\n", c.text));
                self.next += 1;
                self.last_end = Some(c.span.hi);
                return;
            }
        }
        self.last_end = Some(end);
    }

    fn line(&mut self, indent: usize, s: &str, span: Span) {
        self.push_line(indent, s);
        self.trailing(span.hi);
    }

    /// `head a, b, c tail`, wrapped at [`WIDTH`] with continuation lines indented once more.
    fn list_line(&mut self, indent: usize, head: &str, members: &[SyscallRef], tail: &str, span: Span) {
        let names: Vec<String> = members.iter().map(member).collect();
        let one = format!("{head} {}{tail}", names.join(", "));
        if indent * 4 + one.len() <= WIDTH {
            return self.line(indent, &one, span);
        }
        // (text, holds a member yet)
        let mut lines = vec![(head.to_string(), false)];
        for (i, name) in names.iter().enumerate() {
            let piece = if i + 1 < names.len() { format!("{name},") } else { format!("{name}{tail}") };
            let cur_indent = if lines.len() == 1 { indent } else { indent + 1 };
            let (cur, has_member) = lines.last_mut().expect("lines starts non-empty");
            if *has_member && cur_indent * 4 + cur.len() + 1 + piece.len() > WIDTH {
                lines.push((piece, true));
            } else {
                cur.push(' ');
                cur.push_str(&piece);
                *has_member = true;
            }
        }
        let lines: Vec<String> = lines.into_iter().map(|(l, _)| l).collect();
        for (i, l) in lines.iter().enumerate() {
            self.push_line(if i == 0 { indent } else { indent + 1 }, l.trim_start());
        }
        self.trailing(span.hi);
    }

    /// Comments left inside a block before its closing brace.
    fn rest_of_comments(&mut self, indent: usize, before: u32) {
        while let Some(c) = self.comments.get(self.next).filter(|c| c.span.lo < before) {
            if self.blank_before(c.span.lo) {
                self.out.push('\n');
            }
            self.push_line(indent, &format!("#{}", c.text));
            self.last_end = Some(c.span.hi);
            self.next += 1;
        }
    }

    /// Prints `header {`, with a comment on the same line as the brace kept there.
    fn open_block(&mut self, header: &str, search_from: u32) {
        let brace = self.src(search_from, u32::MAX).find('{').map_or(search_from, |i| search_from + i as u32 + 1);
        self.push_line(0, &format!("{header} {{"));
        self.trailing(brace);
    }

    fn policy(&mut self, x: &PolicyDecl) {
        let mut header = format!("policy {}", x.name.name);
        let mut after = x.name.span.hi;
        if let Some(e) = &x.extends {
            header.push_str(&format!(" extends {}", e.name));
            after = e.span.hi;
        }
        self.open_block(&header, after);
        for s in &x.stmts {
            self.leading(s.span, s.span.hi, 1, false);
            match &s.kind {
                StmtKind::Target(a) => {
                    let names: Vec<&str> = a.iter().map(|i| i.name.as_str()).collect();
                    self.line(1, &format!("target {}", names.join(", ")), s.span)
                }
                StmtKind::Kernel(v) => self.line(1, &format!("kernel >= {}.{}", v.major, v.minor), s.span),
                StmtKind::Default(a) => self.line(1, &format!("default {}", action(a)), s.span),
                StmtKind::BadArch(a) => self.line(1, &format!("badarch {}", action(a)), s.span),
                StmtKind::Newer(a) => self.line(1, &format!("newer {}", action(a)), s.span),
                StmtKind::Rule(r) => {
                    let head = format!("{}{}", if r.final_span.is_some() { "final " } else { "" }, action(&r.action));
                    let on = if r.archs.is_empty() {
                        String::new()
                    } else {
                        format!(" on {}", r.archs.iter().map(|a| a.name.as_str()).collect::<Vec<_>>().join(", "))
                    };
                    let tail = on + &r.cond.as_ref().map(|c| format!(" if {}", cond(c, 0))).unwrap_or_default();
                    self.list_line(1, &head, &r.syscalls, &tail, s.span);
                }
            }
        }
        self.close_block(0, x.span.hi);
    }

    fn close_block(&mut self, indent: usize, hi: u32) {
        self.rest_of_comments(indent + 1, hi);
        self.push_line(indent, "}");
        self.trailing(hi);
    }

    fn test(&mut self, x: &TestDecl) {
        self.open_block(&format!("test {}", x.policy.name), x.policy.span.hi);
        for item in &x.items {
            match item {
                TestItem::Case(c) => {
                    self.leading(c.span, c.span.hi, 1, false);
                    self.line(1, &case(c), c.span);
                }
                TestItem::On { arch, cases, span } => {
                    self.leading(*span, span.lo, 1, false);
                    let inline = format!("on {} {{ {} }}", arch.name, cases.iter().map(case).collect::<Vec<_>>().join(" "));
                    let multi_line = self.src(span.lo, span.hi).contains('\n') || cases.len() != 1;
                    if !multi_line && inline.len() + 4 <= WIDTH {
                        self.line(1, &inline, *span);
                        continue;
                    }
                    self.push_line(1, &format!("on {} {{", arch.name));
                    self.trailing(arch.span.hi + 2);
                    for c in cases {
                        self.leading(c.span, c.span.hi, 2, false);
                        self.line(2, &case(c), c.span);
                    }
                    self.close_block(1, span.hi);
                }
            }
        }
        self.close_block(0, x.span.hi);
    }
}

fn quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn member(m: &SyscallRef) -> String {
    match m {
        SyscallRef::Syscall(i) => i.name.clone(),
        SyscallRef::Group(i) => format!("@{}", i.name),
    }
}

/// An action as canonically written.
pub fn action(a: &Action) -> String {
    match &a.data {
        Some(d) => format!("{}({})", a.kind.keyword(), expr(d, 0)),
        None => a.kind.keyword().to_string(),
    }
}

fn number(n: Number) -> String {
    match n.radix {
        16 => format!("{:#x}", n.value),
        8 => format!("{:#o}", n.value),
        2 => format!("{:#b}", n.value),
        _ => n.value.to_string(),
    }
}

/// An expression, parenthesized where a parent binding at `parent` would regroup it.
pub fn expr(e: &Expr, parent: u8) -> String {
    match &e.kind {
        ExprKind::Number(n) => number(*n),
        ExprKind::Name(i) => i.name.clone(),
        ExprKind::Unary(op, x) => {
            let sym = if *op == UnaryOp::BitNot { "~" } else { "-" };
            format!("{sym}{}", expr(x, 4))
        }
        ExprKind::Binary(op, a, b) => {
            let p = op.precedence();
            let s = format!("{} {} {}", expr(a, p), op.symbol(), expr(b, p + 1));
            if p < parent {
                format!("({s})")
            } else {
                s
            }
        }
    }
}

/// A condition, parenthesized where needed (`||` is 1, `&&` 2).
pub fn cond(c: &Cond, parent: u8) -> String {
    let (s, p) = match &c.kind {
        CondKind::Or(a, b) => (format!("{} || {}", cond(a, 1), cond(b, 2)), 1),
        CondKind::And(a, b) => (format!("{} && {}", cond(a, 2), cond(b, 3)), 2),
        CondKind::Not(a) => (format!("!({})", cond(a, 0)), 3),
        CondKind::Compare { arg, mask, op, value } => (format!("{}{} {} {}", arg.name, mask_text(mask), op.symbol(), expr(value, 0)), 3),
        CondKind::In { arg, mask, negated, set } => {
            let items: Vec<String> = set.iter().map(|e| expr(e, 0)).collect();
            let op = if *negated { "not in" } else { "in" };
            (format!("{}{} {op} {{{}}}", arg.name, mask_text(mask), items.join(", ")), 3)
        }
    };
    if p < parent {
        format!("({s})")
    } else {
        s
    }
}

fn mask_text(mask: &Option<Expr>) -> String {
    mask.as_ref().map(|m| format!(" & {}", expr(m, 3))).unwrap_or_default()
}

fn case(c: &TestCase) -> String {
    let args = c.args.as_ref().map(|a| {
        let items: Vec<String> = a
            .iter()
            .map(|x| match x {
                TestArg::Any(_) => "*".to_string(),
                TestArg::Value(e) => expr(e, 0),
            })
            .collect();
        format!("({})", items.join(", "))
    });
    let expected = match &c.expected {
        Expected::Action(a) => action(a),
        Expected::Unknown(_) => "unknown".to_string(),
    };
    format!("{}{} -> {expected}", c.syscall.name, args.unwrap_or_default())
}
