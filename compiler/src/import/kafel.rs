//! `scpc import kafel`: a kafel policy (nsjail's `seccomp_string`, kafel's `.policy` files)
//! as .scp, for the targets given.
//!
//! The meaning taken is kafel's documented one (google/kafel README, "Policy language"):
//! - The file's top-level statements (action blocks, `USE NAME`, `DEFAULT ACTION`) make the
//!   policy compiled; `POLICY NAME { ... }` defines a named list of action blocks and `USE`s
//!   that `USE NAME` pastes in place (only policies defined before). Without `DEFAULT`, the
//!   default is KILL.
//! - An action block `ACTION { rule, rule }` gives ACTION to each rule; the first rule (in
//!   order, after pasting) that matches a call decides it, which is .scp's order too.
//!   Actions: ALLOW, LOG, KILL / KILL_THREAD / DENY (kill_thread), KILL_PROCESS, USER_NOTIF
//!   (notify), ERRNO(n), TRAP(n), TRACE(n).
//! - A rule is a syscall name, optional argument names `name(a, b)` (positional: the first
//!   names arg0), an optional `ON arch` / `ON { arch, ... }` guard, and optional boolean
//!   expressions in braces, ORed (`,` is `||` of lowest precedence). Without declared names,
//!   the kernel's parameter names are used (scpc's tables'). Syscalls kafel names after their
//!   kernel function (`newstat`, `newfstat`, `newlstat`, `newuname`) get the kernel's names. Expressions have `||`, `&&`,
//!   `!`, parentheses, comparisons `==` `!=` `<` `<=` `>` `>=` (unsigned), and values built of
//!   numbers and `#define`d constants with `|` and `&`, an argument possibly masked with `&`.
//! - Widths: kafel compares all 64 bits of an argument on a 64-bit architecture; the language
//!   compares an argument at the width the kernel reads it. A value beyond that width is
//!   read as the kernel reads the argument: a sign-extended negative constant at the
//!   argument's width; any other such value as one the argument (its unused upper bits zero)
//!   never equals, so the comparison is decided there and then (`fd == 0x100000000` never
//!   holds for a 32-bit `fd`): the condition is simplified and a comment says so.
//!
//! What .scp cannot say is refused with an error naming the construct: a comparison between
//! two arguments (`fd != count`), a syscall by bare number (`SYSCALL[-1]`, or a `#define`d
//! number used as a syscall), `#include` (give the importer the whole text).
//!
//! Limits, each an error at the place it is passed: parentheses and `!` nest at most 100
//! deep in an expression (chains such as `a || b || ...` are flat, any length); `USE`s nest at
//! most 100 policies deep; at most 100,000 `USE`s are pasted and 100,000 rules result.

use std::collections::BTreeMap;
use std::fmt::Write;

use super::{checked, comment_text, number, param, policy_name, rules_for, ImportError};
use crate::abi::Arch;

/// What to import for.
#[derive(Clone, Debug, Default)]
pub struct KafelOptions {
    /// The architectures to compile for (default: x86_64).
    pub targets: Vec<Arch>,
    /// The policy's name (default: the file's stem).
    pub name: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Tok {
    Ident(String),
    Num(u64),
    Sym(&'static str),
    Define,
    Include,
    Str,
}

#[derive(Clone, Debug)]
struct Spanned {
    tok: Tok,
    line: usize,
    col: usize,
}

/// Most rules after pasting `USE`s (a chain of policies each using the previous one twice
/// would double at each step).
const MAX_RULES: usize = 100_000;
/// Deepest nesting of parentheses and `!` in an expression.
const MAX_DEPTH: usize = 100;

const SYMBOLS: [&str; 21] = ["==", "!=", "<=", ">=", "&&", "||", "<", ">", "&", "|", "!", "(", ")", "{", "}", "[", "]", ",", ";", "-", "="];

fn lex(source_name: &str, text: &str) -> Result<Vec<Spanned>, ImportError> {
    let mut out = Vec::new();
    let b = text.as_bytes();
    let (mut i, mut line, mut col) = (0usize, 1usize, 1usize);
    let err = |line: usize, col: usize, message: String| ImportError::Parse {
        source_name: source_name.into(),
        location: format!("{line}:{col}"),
        message,
        help: "kafel: `POLICY name { ACTION { syscall(args) { expr }, ... } }`, `USE name`, `DEFAULT ACTION`, `#define NAME VALUE`".into(),
    };
    while i < b.len() {
        let c = b[i];
        let advance = |n: usize, i: &mut usize, col: &mut usize| {
            *i += n;
            *col += n;
        };
        if c == b'\n' {
            i += 1;
            line += 1;
            col = 1;
            continue;
        }
        if c.is_ascii_whitespace() {
            advance(1, &mut i, &mut col);
            continue;
        }
        if text[i..].starts_with("//") {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
            continue;
        }
        if text[i..].starts_with("/*") {
            let Some(end) = text[i + 2..].find("*/") else {
                return Err(err(line, col, "unterminated comment".into()));
            };
            for ch in text[i..i + 2 + end + 2].chars() {
                if ch == '\n' {
                    line += 1;
                    col = 1;
                } else {
                    col += 1;
                }
            }
            i += 2 + end + 2;
            continue;
        }
        let (l, c0) = (line, col);
        if c == b'#' {
            let word: String = text[i + 1..].chars().take_while(|c| c.is_ascii_alphabetic()).collect();
            let tok = match word.as_str() {
                "define" => Tok::Define,
                "include" => Tok::Include,
                _ => return Err(err(l, c0, format!("unknown directive `#{}`", comment_text(&word)))),
            };
            advance(1 + word.len(), &mut i, &mut col);
            out.push(Spanned { tok, line: l, col: c0 });
            continue;
        }
        if c == b'"' {
            let Some(end) = text[i + 1..].find(['"', '\n']).filter(|e| text.as_bytes()[i + 1 + e] == b'"') else {
                return Err(err(l, c0, "unterminated string".into()));
            };
            advance(end + 2, &mut i, &mut col);
            out.push(Spanned { tok: Tok::Str, line: l, col: c0 });
            continue;
        }
        if c.is_ascii_digit() {
            let start = i;
            while i < b.len() && b[i].is_ascii_alphanumeric() {
                i += 1;
            }
            let s = &text[start..i];
            col += i - start;
            let n = if let Some(h) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
                u64::from_str_radix(h, 16).ok()
            } else if let Some(bin) = s.strip_prefix("0b").or_else(|| s.strip_prefix("0B")) {
                u64::from_str_radix(bin, 2).ok()
            } else if s.len() > 1 && s.starts_with('0') {
                u64::from_str_radix(&s[1..], 8).ok()
            } else {
                s.parse().ok()
            };
            let n = n.ok_or_else(|| err(l, c0, format!("`{}` is not a number", comment_text(s))))?;
            out.push(Spanned { tok: Tok::Num(n), line: l, col: c0 });
            continue;
        }
        if c.is_ascii_alphabetic() || c == b'_' {
            let start = i;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                i += 1;
            }
            col += i - start;
            out.push(Spanned { tok: Tok::Ident(text[start..i].to_string()), line: l, col: c0 });
            continue;
        }
        match SYMBOLS.iter().find(|s| text[i..].starts_with(**s)) {
            Some(s) => {
                advance(s.len(), &mut i, &mut col);
                out.push(Spanned { tok: Tok::Sym(s), line: l, col: c0 });
            }
            None => {
                let ch = text[i..].chars().next().unwrap_or('?');
                return Err(err(l, c0, format!("unexpected `{}`", comment_text(&ch.to_string()))));
            }
        }
    }
    Ok(out)
}

/// An expression as written.
#[derive(Clone, Debug)]
enum Expr {
    // chains of one operator are flat (`a || b || c` is one `Or` of three): a long chain
    // nests no deeper than a short one
    Or(Vec<Expr>),
    And(Vec<Expr>),
    Not(Box<Expr>),
    Cmp(&'static str, Box<Expr>, Box<Expr>),
    BitOr(Vec<Expr>),
    BitAnd(Vec<Expr>),
    Name(String, usize, usize),
    Num(u64),
}

/// A rule as written.
#[derive(Clone, Debug)]
struct Rule {
    action: String,
    syscall: String,
    params: Vec<String>,
    on: Option<Vec<String>>,
    exprs: Vec<Expr>,
    line: usize,
    col: usize,
}

#[derive(Clone, Debug)]
enum Item {
    Block(Vec<Rule>),
    Use(String, usize, usize),
}

struct Parser<'a> {
    toks: &'a [Spanned],
    at: usize,
    source_name: &'a str,
    defines: BTreeMap<String, u64>,
    depth: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.at).map(|s| &s.tok)
    }
    fn here(&self) -> (usize, usize) {
        self.toks.get(self.at).or(self.toks.last()).map_or((1, 1), |s| (s.line, s.col))
    }
    fn err(&self, message: impl Into<String>) -> ImportError {
        let (l, c) = self.here();
        ImportError::Parse {
            source_name: self.source_name.into(),
            location: format!("{l}:{c}"),
            message: message.into(),
            help: "kafel: `POLICY name { ACTION { syscall(args) { expr }, ... } }`, `USE name`, `DEFAULT ACTION`, `#define NAME VALUE`"
                .into(),
        }
    }
    fn inexpressible(&self, at: (usize, usize), construct: &str, help: &str) -> ImportError {
        ImportError::Inexpressible {
            source_name: self.source_name.into(),
            location: format!("{}:{}", at.0, at.1),
            construct: construct.into(),
            help: help.into(),
        }
    }
    fn sym(&mut self, s: &str) -> bool {
        if matches!(self.peek(), Some(Tok::Sym(x)) if *x == s) {
            self.at += 1;
            return true;
        }
        false
    }
    fn expect(&mut self, s: &str) -> Result<(), ImportError> {
        if self.sym(s) {
            Ok(())
        } else {
            Err(self.err(format!("expected `{s}`, found {}", self.show())))
        }
    }
    fn show(&self) -> String {
        match self.peek() {
            None => "the end of the text".into(),
            Some(Tok::Ident(s)) => format!("`{}`", comment_text(s)),
            Some(Tok::Num(n)) => format!("`{n}`"),
            Some(Tok::Sym(s)) => format!("`{s}`"),
            Some(Tok::Define) => "`#define`".into(),
            Some(Tok::Include) => "`#include`".into(),
            Some(Tok::Str) => "a string".into(),
        }
    }
    fn ident(&mut self) -> Result<String, ImportError> {
        match self.peek().cloned() {
            Some(Tok::Ident(s)) => {
                self.at += 1;
                Ok(s)
            }
            _ => Err(self.err(format!("expected a name, found {}", self.show()))),
        }
    }
    fn number(&mut self) -> Result<u64, ImportError> {
        let neg = self.sym("-");
        let v = match self.peek().cloned() {
            Some(Tok::Num(n)) => {
                self.at += 1;
                n
            }
            Some(Tok::Ident(s)) if self.defines.contains_key(&s) => {
                self.at += 1;
                self.defines[&s]
            }
            _ => return Err(self.err(format!("expected a number, found {}", self.show()))),
        };
        Ok(if neg { v.wrapping_neg() } else { v })
    }

    /// An action keyword, with its data; `None` when the next token is not one.
    fn action(&mut self) -> Result<Option<String>, ImportError> {
        let Some(Tok::Ident(word)) = self.peek().cloned() else { return Ok(None) };
        let simple = match word.as_str() {
            "ALLOW" => Some("allow"),
            "LOG" => Some("log"),
            "KILL" | "KILL_THREAD" | "DENY" => Some("kill_thread"),
            "KILL_PROCESS" => Some("kill_process"),
            "USER_NOTIF" => Some("notify"),
            _ => None,
        };
        if let Some(s) = simple {
            self.at += 1;
            return Ok(Some(s.to_string()));
        }
        let (name, limit) = match word.as_str() {
            "ERRNO" => ("errno", 4095),
            "TRAP" => ("trap", 0xffff),
            "TRACE" => ("trace", 0xffff),
            _ => return Ok(None),
        };
        self.at += 1;
        self.expect("(")?;
        let n = self.number()?;
        if n > limit {
            return Err(self.err(format!("{word}({n}) is past {limit}")));
        }
        self.expect(")")?;
        Ok(Some(format!("{name}({n})")))
    }

    fn expr(&mut self) -> Result<Expr, ImportError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.err(format!("expression nested more than {MAX_DEPTH} deep")));
        }
        let e = self.or();
        self.depth -= 1;
        e
    }
    fn or(&mut self) -> Result<Expr, ImportError> {
        let mut chain = vec![self.and()?];
        while self.sym("||") {
            chain.push(self.and()?);
        }
        Ok(if chain.len() == 1 { chain.remove(0) } else { Expr::Or(chain) })
    }
    fn and(&mut self) -> Result<Expr, ImportError> {
        let mut chain = vec![self.unary()?];
        while self.sym("&&") {
            chain.push(self.unary()?);
        }
        Ok(if chain.len() == 1 { chain.remove(0) } else { Expr::And(chain) })
    }
    fn unary(&mut self) -> Result<Expr, ImportError> {
        if self.sym("!") {
            self.depth += 1;
            if self.depth > MAX_DEPTH {
                return Err(self.err(format!("expression nested more than {MAX_DEPTH} deep")));
            }
            let e = self.unary();
            self.depth -= 1;
            return Ok(Expr::Not(Box::new(e?)));
        }
        self.cmp()
    }
    fn cmp(&mut self) -> Result<Expr, ImportError> {
        let left = self.bitor()?;
        for op in ["==", "!=", "<=", ">=", "<", ">"] {
            if self.sym(op) {
                let right = self.bitor()?;
                return Ok(Expr::Cmp(op, Box::new(left), Box::new(right)));
            }
        }
        Ok(left)
    }
    fn bitor(&mut self) -> Result<Expr, ImportError> {
        let mut chain = vec![self.bitand()?];
        while self.sym("|") {
            chain.push(self.bitand()?);
        }
        Ok(if chain.len() == 1 { chain.remove(0) } else { Expr::BitOr(chain) })
    }
    fn bitand(&mut self) -> Result<Expr, ImportError> {
        let mut chain = vec![self.primary()?];
        while self.sym("&") {
            chain.push(self.primary()?);
        }
        Ok(if chain.len() == 1 { chain.remove(0) } else { Expr::BitAnd(chain) })
    }
    fn primary(&mut self) -> Result<Expr, ImportError> {
        let (l, c) = self.here();
        if self.sym("(") {
            let e = self.expr()?;
            self.expect(")")?;
            return Ok(e);
        }
        match self.peek().cloned() {
            Some(Tok::Num(n)) => {
                self.at += 1;
                Ok(Expr::Num(n))
            }
            Some(Tok::Sym("-")) => Ok(Expr::Num(self.number()?)),
            Some(Tok::Ident(s)) => {
                self.at += 1;
                Ok(Expr::Name(s, l, c))
            }
            _ => Err(self.err(format!("expected an argument, a number or `(`, found {}", self.show()))),
        }
    }

    fn rule(&mut self, action: &str) -> Result<Rule, ImportError> {
        let (line, col) = self.here();
        let syscall = self.ident()?;
        if syscall == "SYSCALL" && matches!(self.peek(), Some(Tok::Sym("["))) {
            return Err(self.inexpressible(
                (line, col),
                "a syscall by bare number (`SYSCALL[...]`)",
                ".scp names syscalls the ABI tables know; a number no table names has no name to write",
            ));
        }
        if self.defines.contains_key(&syscall) {
            return Err(self.inexpressible(
                (line, col),
                &format!("a syscall by bare number (`{}` is a #define)", comment_text(&syscall)),
                ".scp names syscalls the ABI tables know; a number no table names has no name to write",
            ));
        }
        let mut params = Vec::new();
        if self.sym("(") {
            if !self.sym(")") {
                loop {
                    params.push(self.ident()?);
                    if self.sym(")") {
                        break;
                    }
                    self.expect(",")?;
                }
            }
            if params.len() > 6 {
                return Err(self.err("more than 6 arguments declared"));
            }
        }
        let mut on = None;
        if matches!(self.peek(), Some(Tok::Ident(s)) if s == "ON") {
            self.at += 1;
            let mut archs = Vec::new();
            if self.sym("{") {
                loop {
                    archs.push(self.ident()?);
                    if self.sym("}") {
                        break;
                    }
                    self.expect(",")?;
                }
            } else {
                archs.push(self.ident()?);
            }
            on = Some(archs);
        }
        let mut exprs = Vec::new();
        if self.sym("{") {
            loop {
                exprs.push(self.expr()?);
                if self.sym("}") {
                    break;
                }
                self.expect(",")?;
            }
        }
        Ok(Rule { action: action.to_string(), syscall: kernel_name(&syscall).to_string(), params, on, exprs, line, col })
    }

    fn block(&mut self, action: String) -> Result<Vec<Rule>, ImportError> {
        self.expect("{")?;
        let mut rules = Vec::new();
        if self.sym("}") {
            return Ok(rules);
        }
        loop {
            rules.push(self.rule(&action)?);
            if self.sym("}") {
                return Ok(rules);
            }
            self.expect(",")?;
        }
    }

    /// An action block or a `USE`, `None` at anything else.
    fn item(&mut self) -> Result<Option<Item>, ImportError> {
        if matches!(self.peek(), Some(Tok::Ident(s)) if s == "USE") {
            let (l, c) = self.here();
            self.at += 1;
            return Ok(Some(Item::Use(self.ident()?, l, c)));
        }
        match self.action()? {
            Some(a) => Ok(Some(Item::Block(self.block(a)?))),
            None => Ok(None),
        }
    }
}

/// The file parsed: named policies, the top-level items, the default.
struct File {
    policies: BTreeMap<String, Vec<Item>>,
    top: Vec<Item>,
    default: Option<String>,
    defines: BTreeMap<String, u64>,
}

fn parse(source_name: &str, text: &str) -> Result<File, ImportError> {
    let toks = lex(source_name, text)?;
    let mut p = Parser { toks: &toks, at: 0, source_name, defines: BTreeMap::new(), depth: 0 };
    let mut file = File { policies: BTreeMap::new(), top: Vec::new(), default: None, defines: BTreeMap::new() };
    while p.at < toks.len() {
        if p.sym(",") || p.sym(";") {
            continue;
        }
        let (l, c) = p.here();
        match p.peek().cloned() {
            Some(Tok::Define) => {
                p.at += 1;
                let name = p.ident()?;
                let v = p.number()?;
                p.defines.insert(name, v);
            }
            Some(Tok::Include) => {
                return Err(p.inexpressible((l, c), "#include", "give the importer the policy with the included files' text in place"))
            }
            Some(Tok::Ident(s)) if s == "POLICY" => {
                p.at += 1;
                let name = p.ident()?;
                if file.policies.contains_key(&name) {
                    return Err(p.err(format!("policy `{}` is defined twice", comment_text(&name))));
                }
                p.expect("{")?;
                let mut items = Vec::new();
                if !p.sym("}") {
                    loop {
                        match p.item()? {
                            Some(i) => items.push(i),
                            None => return Err(p.err(format!("expected an action block or USE, found {}", p.show()))),
                        }
                        if p.sym("}") {
                            break;
                        }
                        p.expect(",")?;
                    }
                }
                file.policies.insert(name, items);
            }
            Some(Tok::Ident(s)) if s == "DEFAULT" => {
                p.at += 1;
                if file.default.is_some() {
                    return Err(p.err("DEFAULT given twice"));
                }
                file.default = Some(p.action()?.ok_or_else(|| p.err(format!("expected an action, found {}", p.show())))?);
            }
            _ => match p.item()? {
                Some(i) => file.top.push(i),
                None => return Err(p.err(format!("expected a statement, found {}", p.show()))),
            },
        }
    }
    file.defines = p.defines;
    Ok(file)
}

/// A condition after translation, with constants folded.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Cond {
    True,
    False,
    Atom(String),
    And(Vec<Cond>),
    Or(Vec<Cond>),
    Not(Box<Cond>),
}

impl Cond {
    fn and(a: Cond, b: Cond) -> Cond {
        match (a, b) {
            (Cond::False, _) | (_, Cond::False) => Cond::False,
            (Cond::True, x) | (x, Cond::True) => x,
            (Cond::And(mut v), Cond::And(w)) => {
                v.extend(w);
                Cond::And(v)
            }
            (Cond::And(mut v), x) => {
                v.push(x);
                Cond::And(v)
            }
            (x, y) => Cond::And(vec![x, y]),
        }
    }
    fn or(a: Cond, b: Cond) -> Cond {
        match (a, b) {
            (Cond::True, _) | (_, Cond::True) => Cond::True,
            (Cond::False, x) | (x, Cond::False) => x,
            (Cond::Or(mut v), Cond::Or(w)) => {
                v.extend(w);
                Cond::Or(v)
            }
            (Cond::Or(mut v), x) => {
                v.push(x);
                Cond::Or(v)
            }
            (x, y) => Cond::Or(vec![x, y]),
        }
    }
    fn not(a: Cond) -> Cond {
        match a {
            Cond::True => Cond::False,
            Cond::False => Cond::True,
            Cond::Not(x) => *x,
            x => Cond::Not(Box::new(x)),
        }
    }
    fn text(&self) -> String {
        match self {
            Cond::True => "true".into(),
            Cond::False => "false".into(),
            Cond::Atom(s) => s.clone(),
            Cond::And(v) => v
                .iter()
                .map(|c| if matches!(c, Cond::Or(_)) { format!("({})", c.text()) } else { c.text() })
                .collect::<Vec<_>>()
                .join(" && "),
            Cond::Or(v) => v.iter().map(Cond::text).collect::<Vec<_>>().join(" || "),
            Cond::Not(x) => format!("!({})", x.text()),
        }
    }
}

/// A value: a constant, or an argument masked.
enum Value {
    Const(u64),
    Arg { index: u8, mask: u64 },
}

/// Translating the expressions of one rule for one architecture.
struct Ctx<'a> {
    p: &'a Parser<'a>,
    rule: &'a Rule,
    arch: Arch,
    /// Whether a comparison was decided by width.
    decided: bool,
}

impl Ctx<'_> {
    fn value(&self, e: &Expr) -> Result<Value, ImportError> {
        match e {
            Expr::Num(n) => Ok(Value::Const(*n)),
            Expr::Name(n, l, c) => {
                if let Some(i) = self.rule.params.iter().position(|x| x == n) {
                    return Ok(Value::Arg { index: i as u8, mask: u64::MAX });
                }
                if let Some(v) = self.p.defines.get(n) {
                    return Ok(Value::Const(*v));
                }
                if self.rule.params.is_empty() {
                    if let Some(s) = self.arch.table().syscall(&self.rule.syscall) {
                        if let Some(p) = s.params.iter().find(|p| p.name == n && p.reg_hi.is_none()) {
                            return Ok(Value::Arg { index: p.reg, mask: u64::MAX });
                        }
                    }
                }
                Err(ImportError::Value {
                    source_name: self.p.source_name.into(),
                    location: format!("{l}:{c}"),
                    message: format!("`{}` is neither an argument of {} nor a #define", comment_text(n), self.rule.syscall),
                    help: match self.arch.table().syscall(&self.rule.syscall) {
                        Some(s) => {
                            format!("{}'s parameters are {}", s.name, s.params.iter().map(|p| p.name).collect::<Vec<_>>().join(", "))
                        }
                        None => "declare the arguments: `name(a, b) { a == 1 }`".into(),
                    },
                })
            }
            Expr::BitOr(chain) | Expr::BitAnd(chain) => {
                let or = matches!(e, Expr::BitOr(..));
                let mut acc = Value::Const(if or { 0 } else { u64::MAX });
                for operand in chain {
                    acc = match (acc, self.value(operand)?) {
                        (Value::Const(x), Value::Const(y)) => Value::Const(if or { x | y } else { x & y }),
                        (Value::Arg { index, mask }, Value::Const(k)) | (Value::Const(k), Value::Arg { index, mask }) if !or => {
                            Value::Arg { index, mask: mask & k }
                        }
                        _ => {
                            return Err(self.p.inexpressible(
                                (self.rule.line, self.rule.col),
                                if or { "`|` of an argument" } else { "`&` of two arguments" },
                                ".scp masks an argument with a constant only",
                            ))
                        }
                    };
                }
                Ok(acc)
            }
            _ => Err(self.p.inexpressible((self.rule.line, self.rule.col), "a condition used as a value", "compare arguments with values")),
        }
    }

    fn cond(&mut self, e: &Expr) -> Result<Cond, ImportError> {
        Ok(match e {
            Expr::Or(chain) => {
                let mut acc = Cond::False;
                for operand in chain {
                    acc = Cond::or(acc, self.cond(operand)?);
                }
                acc
            }
            Expr::And(chain) => {
                let mut acc = Cond::True;
                for operand in chain {
                    acc = Cond::and(acc, self.cond(operand)?);
                }
                acc
            }
            Expr::Not(a) => Cond::not(self.cond(a)?),
            Expr::Cmp(op, a, b) => match (self.value(a)?, self.value(b)?) {
                (Value::Arg { index, mask }, Value::Const(k)) => self.atom(index, mask, op, k),
                (Value::Const(k), Value::Arg { index, mask }) => {
                    let flipped = match *op {
                        "<" => ">",
                        ">" => "<",
                        "<=" => ">=",
                        ">=" => "<=",
                        o => o,
                    };
                    self.atom(index, mask, flipped, k)
                }
                (Value::Const(x), Value::Const(y)) => {
                    if compare(op, x, y) {
                        Cond::True
                    } else {
                        Cond::False
                    }
                }
                (Value::Arg { .. }, Value::Arg { .. }) => {
                    return Err(self.p.inexpressible(
                        (self.rule.line, self.rule.col),
                        &format!("a comparison between two arguments (in `{}`)", self.rule.syscall),
                        "a seccomp filter can compare two arguments, but .scp compares an argument with constants only",
                    ))
                }
            },
            _ => {
                return Err(self.p.inexpressible(
                    (self.rule.line, self.rule.col),
                    "a value used as a condition",
                    "write a comparison (`flags & X != 0`)",
                ))
            }
        })
    }

    /// `(arg & mask) OP k` at the width the kernel reads the argument.
    fn atom(&mut self, index: u8, mask: u64, op: &'static str, k: u64) -> Cond {
        let (name, width) = param(self.arch, &self.rule.syscall, index);
        let w = width.mask();
        let m = mask & w;
        let sign_extended = |v: u64| {
            let sign = 1u64 << (width.bits() - 1);
            v & !w != 0 && v | w == u64::MAX && v & sign != 0
        };
        let v = if k & !w == 0 || (mask == u64::MAX && sign_extended(k)) {
            k & w
        } else {
            // beyond what the argument holds as the kernel reads it
            self.decided = true;
            return if matches!(op, "!=" | "<" | "<=") { Cond::True } else { Cond::False };
        };
        if op == "==" && v & !m != 0 {
            self.decided = true;
            return Cond::False;
        }
        if op == "!=" && v & !m != 0 {
            self.decided = true;
            return Cond::True;
        }
        if m == 0 {
            self.decided = true;
            return if compare(op, 0, v) { Cond::True } else { Cond::False };
        }
        let lhs = if m == w { name } else { format!("{name} & {}", number(m)) };
        Cond::Atom(format!("{lhs} {op} {}", number(v)))
    }
}

fn compare(op: &str, x: u64, y: u64) -> bool {
    match op {
        "==" => x == y,
        "!=" => x != y,
        "<" => x < y,
        "<=" => x <= y,
        ">" => x > y,
        _ => x >= y,
    }
}

/// The kernel's name of a syscall kafel's tables name after its `sys_` function (`newstat` is
/// `stat`).
fn kernel_name(kafel: &str) -> &str {
    match kafel {
        "newstat" => "stat",
        "newfstat" => "fstat",
        "newlstat" => "lstat",
        "newuname" => "uname",
        "mmap_pgoff" => "mmap2",
        other => other,
    }
}

/// kafel's names of architectures.
fn kafel_arch(name: &str) -> Option<Arch> {
    Some(match name {
        "x86_64" | "amd64" => Arch::X86_64,
        "x86" | "i386" => Arch::I386,
        "x32" => Arch::X32,
        "arm" => Arch::Arm,
        "aarch64" | "arm64" => Arch::Aarch64,
        "riscv64" => Arch::Riscv64,
        _ => return None,
    })
}

/// Deepest chain of `USE`s (a policy using one that uses another...).
const MAX_USE_DEPTH: usize = 100;

/// Pasting `USE`s: the file, where each policy is defined (its rank in the text), and how
/// many `USE`s have been pasted so far (a budget: policies that use empty ones many times over
/// would take forever without adding a rule).
struct Expander<'a> {
    p: &'a Parser<'a>,
    file: &'a File,
    rank: BTreeMap<&'a str, usize>,
    pasted: usize,
}

impl Expander<'_> {
    /// The rules of `items` with `USE`s pasted in; `items` may use the policies of rank below
    /// `visible`.
    fn expand(&mut self, items: &[Item], visible: usize, depth: usize, out: &mut Vec<Rule>) -> Result<(), ImportError> {
        for item in items {
            match item {
                Item::Block(rules) => {
                    if out.len() + rules.len() > MAX_RULES {
                        return Err(self.p.err(format!("more than {MAX_RULES} rules once USE statements are pasted in")));
                    }
                    out.extend(rules.iter().cloned());
                }
                Item::Use(name, l, c) => {
                    let at = |message: String, help: &str| ImportError::Value {
                        source_name: self.p.source_name.into(),
                        location: format!("{l}:{c}"),
                        message,
                        help: help.into(),
                    };
                    let rank = self.rank.get(name.as_str()).copied().filter(|r| *r < visible);
                    let (Some(rank), Some(body)) = (rank, self.file.policies.get(name)) else {
                        return Err(at(
                            format!("USE of `{}`, which is not defined before", comment_text(name)),
                            "kafel's USE names a POLICY defined earlier in the file",
                        ));
                    };
                    self.pasted += 1;
                    if self.pasted > MAX_RULES {
                        return Err(at(format!("more than {MAX_RULES} USE statements pasted in"), "use each policy once"));
                    }
                    if depth >= MAX_USE_DEPTH {
                        return Err(at(
                            format!("USE nested more than {MAX_USE_DEPTH} policies deep"),
                            "paste the rules of the innermost policies into their users",
                        ));
                    }
                    self.expand(body, rank, depth + 1, out)?;
                }
            }
        }
        Ok(())
    }
}

/// Reads a kafel policy and writes the policy it compiles. What it returns always checks.
pub fn import(source_name: &str, text: &str, opts: &KafelOptions) -> Result<String, ImportError> {
    let file = parse(source_name, text)?;
    let targets = if opts.targets.is_empty() { vec![Arch::X86_64] } else { opts.targets.clone() };
    // policies in the order they are defined, for USE's "defined before"
    let order = definition_order(source_name, text)?;
    let p = Parser { toks: &[], at: 0, source_name, defines: file.defines.clone(), depth: 0 };
    let mut rules = Vec::new();
    let mut rank = BTreeMap::new();
    for (i, name) in order.iter().enumerate() {
        rank.entry(name.as_str()).or_insert(i);
    }
    Expander { p: &p, file: &file, rank, pasted: 0 }.expand(&file.top, order.len(), 0, &mut rules)?;
    let default = file.default.clone().unwrap_or_else(|| "kill_thread".into());
    let name = match &opts.name {
        Some(n) => n.clone(),
        None => policy_name(&std::path::Path::new(source_name).file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default()),
    };
    let mut body = String::new();
    for r in &rules {
        let known: Vec<Arch> = targets.iter().copied().filter(|a| a.table().syscall(&r.syscall).is_some()).collect();
        if known.is_empty() {
            return Err(ImportError::Value {
                source_name: source_name.into(),
                location: format!("{}:{}", r.line, r.col),
                message: format!(
                    "`{}` is not a syscall of {}",
                    comment_text(&r.syscall),
                    targets.iter().map(|a| a.name()).collect::<Vec<_>>().join(", ")
                ),
                help: "kafel refuses an unknown syscall too; check the name and the targets".into(),
            });
        }
        // the targets the guard leaves that have the syscall (scpc skips the others itself)
        let on: Vec<Arch> = match &r.on {
            None => known.clone(),
            Some(names) => {
                let named: Vec<Arch> = names.iter().filter_map(|n| kafel_arch(n)).collect();
                known.iter().copied().filter(|a| named.contains(a)).collect()
            }
        };
        if on.is_empty() {
            let _ = writeln!(body, "    # {}:{}: {} {} is for other architectures", r.line, r.col, r.action, r.syscall);
            continue;
        }
        // one translation per architecture; the same text everywhere is one rule
        let mut per_arch: Vec<(Vec<Arch>, Cond, bool)> = Vec::new();
        for &arch in &on {
            let mut ctx = Ctx { p: &p, rule: r, arch, decided: false };
            let mut cond = if r.exprs.is_empty() { Cond::True } else { Cond::False };
            for e in &r.exprs {
                cond = Cond::or(cond, ctx.cond(e)?);
            }
            match per_arch.iter_mut().find(|(_, c, _)| *c == cond) {
                Some((archs, _, d)) => {
                    archs.push(arch);
                    *d |= ctx.decided;
                }
                None => per_arch.push((vec![arch], cond, ctx.decided)),
            }
        }
        for (archs, cond, decided) in per_arch {
            let on_clause = if archs == known {
                String::new()
            } else {
                format!(" on {}", archs.iter().map(|a| a.name()).collect::<Vec<_>>().join(", "))
            };
            if decided {
                let _ = writeln!(
                    body,
                    "    # {}:{}: a comparison with a value wider than the argument the kernel reads is decided at that width",
                    r.line, r.col
                );
            }
            match cond {
                Cond::False => {
                    let _ = writeln!(body, "    # {}:{}: {} {}{on_clause}: never matches", r.line, r.col, r.action, r.syscall);
                }
                Cond::True => {
                    let _ = writeln!(body, "    {} {}{on_clause}", r.action, r.syscall);
                }
                Cond::Or(alternatives) => {
                    let texts: Vec<String> = alternatives.iter().map(Cond::text).collect();
                    body += &rules_for(&format!("{} {}{on_clause}", r.action, r.syscall), &texts, false);
                }
                c => {
                    let _ = writeln!(body, "    {} {}{on_clause} if {}", r.action, r.syscall, c.text());
                }
            }
        }
    }
    let mut out = String::new();
    let _ = writeln!(out, "# Imported by `scpc import kafel` from {}.", comment_text(source_name));
    let _ = writeln!(out, "# The first rule that matches decides, as in kafel.");
    let _ = writeln!(out, "\npolicy {name} {{");
    let _ = writeln!(out, "    target {}", targets.iter().map(|a| a.name()).collect::<Vec<_>>().join(", "));
    let _ = writeln!(out, "    default {default}");
    out.push_str(&body);
    out.push_str("}\n");
    checked(source_name, out)
}

/// The names of the POLICY definitions, in the order of the text.
fn definition_order(source_name: &str, text: &str) -> Result<Vec<String>, ImportError> {
    let toks = lex(source_name, text)?;
    Ok(toks
        .windows(2)
        .filter_map(|w| match (&w[0].tok, &w[1].tok) {
            (Tok::Ident(k), Tok::Ident(n)) if k == "POLICY" => Some(n.clone()),
            _ => None,
        })
        .collect())
}
