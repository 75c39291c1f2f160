//! `scpc import minijail`: a minijail `.policy` file (and the files it `@include`s) as .scp,
//! for one architecture; its `@frequency` file as a profile for `scpc build --profile`.
//!
//! The meaning taken is minijail's documented one (minijail0(5), "Seccomp_Filter Syntax";
//! minijail's `tools/parser.py` for the directives):
//! - `NAME: 1` (or `allow`) allows the syscall; `NAME: return ERRNO` fails it with ERRNO;
//!   `NAME: kill`, `kill-process`, `kill-thread`, `trap`, `trace`, `log`, `user-notify` take
//!   that action.
//! - `NAME: EXPR` allows the call when EXPR holds; `NAME: EXPR; return ERRNO` (or another
//!   action) allows it when EXPR holds and takes the action otherwise. EXPR is a disjunction
//!   (`||`) of conjunctions (`&&`) of atoms `argN OP VALUE`: `==`, `!=`, `<`, `<=`, `>`, `>=`
//!   (unsigned), `&` (some bit of VALUE is set: `argN & VALUE != 0`) and `in` (no bit outside
//!   VALUE is set: `argN & ~VALUE == 0`). VALUE is numbers and constants joined by `|`, with
//!   `~` and parentheses. (minijail's Python compiler, `tools/compile_seccomp_policy.py`,
//!   reads `EXPR; return ERRNO` the other way round, ERRNO when EXPR holds; crosvm's policies
//!   use neither form.)
//! - A call no line names gets the default action: `@default ACTION` when given, else
//!   kill_process (minijail kills the process). With `@denylist`, the default is allow, and
//!   each line says what is denied: `NAME: return ERRNO`, or `NAME: EXPR; return ERRNO` (ERRNO
//!   when EXPR holds, as minijail's denylist compiler reads it).
//! - Lines of one syscall are tried in order; a line with a `\` at its end goes on on the
//!   next; `#` starts a comment.
//! - `@include PATH` reads another policy file (relative to the including file's directory;
//!   it must lie below the directory of the file imported, and nesting stops at 10 files,
//!   minijail's limit); `@frequency PATH` reads `NAME: COUNT` lines, which become the profile
//!   (counts add up, saturating). At most 10,000 files and 16 MiB are read through `@include`
//!   and `@frequency` in all, and parentheses in a value nest at most 100 deep: past those the
//!   import stops with an error at the line.
//! - Constants: from the `constants.json` minijail's compiler reads (the one beside the policy,
//!   or given), else from scpc's tables for the architecture. The architecture is given, or
//!   read from `constants.json` (`arch_nr`).
//! - Widths: minijail compares all 64 bits of an argument on a 64-bit architecture; the
//!   language compares an argument at the width the kernel reads it. A negative constant
//!   (`-100`, AT_FDCWD) compared with a 32-bit argument is taken at 32 bits; any other value
//!   wider than the argument is refused (the comparison would hinge on bits the kernel
//!   ignores). The two readings differ only for calls whose unused upper bits hold garbage.
//!
//! What the file says goes into the policy as numbers and syscall names the tables know;
//! each rule is preceded by its line of the source as a comment (escaped by [`comment_text`]).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{checked, comment_text, number, param, policy_name, rules_for, ImportError};
use crate::abi::{Arch, Width};

/// How the importer reads files (the file system, or memory in tests).
pub trait Files {
    /// The text of `path`.
    fn read(&self, path: &Path) -> std::io::Result<String>;
}

/// Files on disk: regular files of at most 4 MiB.
pub struct Disk;

impl Files for Disk {
    fn read(&self, path: &Path) -> std::io::Result<String> {
        let meta = std::fs::metadata(path)?;
        if !meta.is_file() || meta.len() > 4 << 20 {
            return Err(std::io::Error::other("not a regular file of at most 4 MiB"));
        }
        let bytes = std::fs::read(path)?;
        String::from_utf8(bytes).map_err(|_| std::io::Error::other("not UTF-8 text"))
    }
}

/// What to import for.
#[derive(Clone, Debug, Default)]
pub struct MinijailOptions {
    /// The architecture (default: `constants.json`'s).
    pub arch: Option<Arch>,
    /// minijail's `constants.json` (default: the one beside the policy, when there is one).
    pub constants: Option<PathBuf>,
    /// The policy's name (default: the file's stem).
    pub name: Option<String>,
}

/// An imported minijail policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Imported {
    /// The .scp text.
    pub policy: String,
    /// The `@frequency` counts as a profile (TSV `syscall<TAB>count`), when the files name one.
    pub profile: Option<String>,
}

#[derive(Deserialize)]
struct ConstantsJson {
    arch_nr: u32,
    #[serde(default)]
    bits: Option<u32>,
    constants: BTreeMap<String, serde_json::Number>,
    syscalls: BTreeMap<String, u64>,
}

/// The constants and syscall names minijail would use.
struct Tables {
    arch: Arch,
    constants: BTreeMap<String, u64>,
    syscalls: Option<BTreeMap<String, u64>>,
}

impl Tables {
    fn constant(&self, name: &str) -> Option<u64> {
        self.constants.get(name).copied().or_else(|| self.arch.table().constant(name))
    }
}

/// A lexical token of a line.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Tok {
    Ident(String),
    Num(u64),
    Sym(&'static str),
}

/// A logical line (continued lines joined), comment removed.
struct Line<'a> {
    file: &'a str,
    /// Its first line, from 1.
    number: usize,
    /// The column its statement starts at, from 1.
    column: usize,
    text: String,
}

impl Line<'_> {
    /// `LINE:COLUMN` of the statement.
    fn at(&self) -> String {
        format!("{}:{}", self.number, self.column)
    }

    fn err(&self, message: impl Into<String>, help: &str) -> ImportError {
        ImportError::Parse { source_name: self.file.to_string(), location: self.at(), message: message.into(), help: help.into() }
    }
}

const SYNTAX: &str = "a line is `NAME: 1`, `NAME: return ERRNO`, `NAME: ACTION` or `NAME: EXPR [; ACTION]`, EXPR being `argN OP VALUE` atoms joined by && and ||";

fn tokenize(line: &Line<'_>, text: &str) -> Result<Vec<Tok>, ImportError> {
    let mut out = Vec::new();
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let c = b[i] as char;
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        let two = text.get(i..i + 2).unwrap_or("");
        if let Some(s) = ["==", "!=", "<=", ">=", "&&", "||"].into_iter().find(|s| *s == two) {
            out.push(Tok::Sym(s));
            i += 2;
            continue;
        }
        if let Some(s) =
            ["<", ">", "&", "|", "~", "(", ")", ":", ";", ",", "{", "}", "[", "]", "="].into_iter().find(|s| s.as_bytes()[0] == b[i])
        {
            out.push(Tok::Sym(s));
            i += 1;
            continue;
        }
        if c.is_ascii_digit() || (c == '-' && b.get(i + 1).is_some_and(u8::is_ascii_digit)) {
            let start = i;
            i += 1;
            while i < b.len() && (b[i].is_ascii_alphanumeric()) {
                i += 1;
            }
            out.push(Tok::Num(parse_number(&text[start..i]).ok_or_else(|| {
                line.err(format!("`{}` is not a number", comment_text(&text[start..i])), "numbers are decimal, 0x hex or 0 octal")
            })?));
            continue;
        }
        if c.is_ascii_alphabetic() || c == '_' || c == '@' {
            let start = i;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || matches!(b[i], b'_' | b'-' | b'@')) {
                i += 1;
            }
            out.push(Tok::Ident(text[start..i].to_string()));
            continue;
        }
        return Err(line.err(format!("unexpected `{}`", comment_text(&c.to_string())), SYNTAX));
    }
    Ok(out)
}

/// A number as C's strtol with base 0 reads it (and minijail's parser): `0x` hex, a leading
/// `0` octal, else decimal; negative values as 64-bit two's complement.
fn parse_number(s: &str) -> Option<u64> {
    let (neg, digits) = s.strip_prefix('-').map_or((false, s), |d| (true, d));
    let v = if let Some(hex) = digits.strip_prefix("0x").or_else(|| digits.strip_prefix("0X")) {
        u64::from_str_radix(hex, 16).ok()?
    } else if digits.len() > 1 && digits.starts_with('0') {
        u64::from_str_radix(&digits[1..], 8).ok()?
    } else {
        digits.parse().ok()?
    };
    Some(if neg { v.wrapping_neg() } else { v })
}

/// A comparison of the expression language.
#[derive(Clone, Debug)]
struct Atom {
    arg: u8,
    op: &'static str,
    value: u64,
}

/// The parser of one line's tokens.
struct Parser<'a, 'l> {
    toks: &'a [Tok],
    at: usize,
    line: &'a Line<'l>,
    tables: &'a Tables,
    /// Parentheses open around the value being read.
    depth: usize,
}

/// Deepest nesting of parentheses in a value.
const MAX_DEPTH: usize = 100;

/// Most bytes read through `@include`s and `@frequency` files in all (a file including another
/// many times over, a few levels deep, would read without end).
const MAX_INCLUDED_BYTES: usize = 16 << 20;

/// Most `@include`s and `@frequency` files read in all (the same bound for tiny files).
const MAX_INCLUDES: usize = 10_000;

impl Parser<'_, '_> {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.at)
    }
    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.at).cloned();
        self.at += 1;
        t
    }
    fn eat(&mut self, s: &str) -> bool {
        if self.peek()
            == Some(&Tok::Sym(match s {
                "||" => "||",
                "&&" => "&&",
                "|" => "|",
                ";" => ";",
                ")" => ")",
                _ => return false,
            }))
        {
            self.at += 1;
            return true;
        }
        false
    }

    fn single(&mut self) -> Result<u64, ImportError> {
        match self.next() {
            Some(Tok::Num(n)) => Ok(n),
            Some(Tok::Ident(id)) => self.tables.constant(&id).ok_or_else(|| {
                self.line.err(
                    format!("unknown constant `{}`", comment_text(&id)),
                    "constants come from minijail's constants.json (give it with --constants) or scpc's tables",
                )
            }),
            other => Err(self.line.err(format!("expected a constant, found {}", show(other.as_ref())), SYNTAX)),
        }
    }

    fn constant(&mut self) -> Result<u64, ImportError> {
        let negate = self.peek() == Some(&Tok::Sym("~"));
        if negate {
            self.at += 1;
        }
        let v = if self.peek() == Some(&Tok::Sym("(")) {
            self.at += 1;
            if self.depth >= MAX_DEPTH {
                return Err(self
                    .line
                    .err(format!("parentheses nested more than {MAX_DEPTH} deep"), "write the value with fewer parentheses"));
            }
            self.depth += 1;
            let v = self.value()?;
            self.depth -= 1;
            if !self.eat(")") {
                return Err(self.line.err("unclosed parenthesis", SYNTAX));
            }
            v
        } else {
            self.single()?
        };
        Ok(if negate { !v } else { v })
    }

    fn value(&mut self) -> Result<u64, ImportError> {
        let mut v = self.constant()?;
        while self.eat("|") {
            v |= self.constant()?;
        }
        Ok(v)
    }

    fn atom(&mut self) -> Result<Atom, ImportError> {
        let arg = match self.next() {
            Some(Tok::Ident(a)) => a.strip_prefix("arg").and_then(|n| n.parse::<u8>().ok()).filter(|n| *n < 6),
            _ => None,
        }
        .ok_or_else(|| self.line.err("expected an argument arg0..arg5", SYNTAX))?;
        let op = match self.next() {
            Some(Tok::Sym(s @ ("==" | "!=" | "<" | "<=" | ">" | ">=" | "&"))) => s,
            Some(Tok::Ident(s)) if s == "in" => "in",
            other => return Err(self.line.err(format!("expected an operator, found {}", show(other.as_ref())), SYNTAX)),
        };
        let value = self.value()?;
        Ok(Atom { arg, op, value })
    }

    /// Disjunctive normal form: clauses of atoms.
    fn expression(&mut self) -> Result<Vec<Vec<Atom>>, ImportError> {
        let mut clauses = Vec::new();
        loop {
            let mut atoms = vec![self.atom()?];
            while self.eat("&&") {
                atoms.push(self.atom()?);
            }
            clauses.push(atoms);
            if !self.eat("||") {
                return Ok(clauses);
            }
        }
    }

    fn action(&mut self) -> Result<Action, ImportError> {
        match self.next() {
            Some(Tok::Num(1)) => Ok(Action::Scp("allow".into())),
            Some(Tok::Ident(a)) => match a.as_str() {
                "allow" => Ok(Action::Scp("allow".into())),
                "kill" | "kill-process" => Ok(Action::Scp("kill_process".into())),
                "kill-thread" => Ok(Action::Scp("kill_thread".into())),
                "trap" => Ok(Action::Scp("trap".into())),
                "trace" => Ok(Action::Scp("trace(0)".into())),
                "log" => Ok(Action::Scp("log".into())),
                "user-notify" => Ok(Action::Scp("notify".into())),
                "return" => {
                    let v = self.single()?;
                    if v > 4095 {
                        return Err(self.line.err(format!("errno {v} is past 4095"), "errno values are 0..4095"));
                    }
                    Ok(Action::Errno(v))
                }
                other => Err(self.line.err(format!("unknown action `{}`", comment_text(other)), SYNTAX)),
            },
            other => Err(self.line.err(format!("expected an action, found {}", show(other.as_ref())), SYNTAX)),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Action {
    Scp(String),
    Errno(u64),
}

impl Action {
    fn text(&self) -> String {
        match self {
            Action::Scp(s) => s.clone(),
            Action::Errno(n) => format!("errno({n})"),
        }
    }
}

fn show(t: Option<&Tok>) -> String {
    match t {
        None => "the end of the line".into(),
        Some(Tok::Num(n)) => format!("`{n}`"),
        Some(Tok::Ident(s)) => format!("`{}`", comment_text(s)),
        Some(Tok::Sym(s)) => format!("`{s}`"),
    }
}

/// A value at the width of the argument: itself when it fits, a negative number's low bits
/// when it is sign-extended; else `None`.
fn fit(v: u64, width: Width) -> Option<u64> {
    let mask = width.mask();
    if v & !mask == 0 {
        return Some(v);
    }
    let sign = 1u64 << (width.bits() - 1);
    (v | mask == u64::MAX && v & sign != 0).then_some(v & mask)
}

/// An atom as .scp at the width `arch` reads the argument.
fn atom_text(a: &Atom, arch: Arch, syscall: &str) -> Result<String, String> {
    let (name, width) = param(arch, syscall, a.arg);
    let mask = width.mask();
    Ok(match a.op {
        "&" => format!("{name} & {} != 0", number(a.value & mask)),
        "in" => format!("{name} & {} == 0", number(!a.value & mask)),
        op => {
            let v = fit(a.value, width).ok_or_else(|| {
                format!(
                    "arg{} (`{name}`) is {} bits as the kernel reads it, and {} cannot hold there",
                    a.arg,
                    width.bits(),
                    number(a.value)
                )
            })?;
            format!("{name} {op} {}", number(v))
        }
    })
}

/// A whole state of the import.
struct Import<'a> {
    files: &'a dyn Files,
    root_dir: PathBuf,
    tables: Tables,
    default: Option<String>,
    denylist: bool,
    frequency: BTreeMap<String, u64>,
    rules: String,
    /// Bytes read through `@include` and `@frequency` so far.
    included: usize,
    /// Files read through `@include` and `@frequency` so far.
    reads: usize,
}

impl Import<'_> {
    /// The file an `@include` or `@frequency` line names: its canonical path and its text.
    fn read(&mut self, path: &Path, from: &Line<'_>) -> Result<(PathBuf, String), ImportError> {
        let shown = comment_text(&path.to_string_lossy());
        let unreadable =
            |e: std::io::Error| from.err(format!("cannot read `{shown}`: {e}"), "the file an @include or @frequency line names must exist");
        let canonical = std::fs::canonicalize(path).map_err(unreadable)?;
        if !canonical.starts_with(&self.root_dir) {
            return Err(from.err(
                format!("`{shown}` is outside the directory of the policy imported"),
                "includes and frequency files must lie below the imported file's directory",
            ));
        }
        self.reads += 1;
        if self.reads > MAX_INCLUDES {
            return Err(from.err(format!("more than {MAX_INCLUDES} files included in all"), "include each file once"));
        }
        // read by the path checked
        let text = self.files.read(&canonical).map_err(unreadable)?;
        self.included = self.included.saturating_add(text.len());
        if self.included > MAX_INCLUDED_BYTES {
            return Err(
                from.err(format!("the included files come to more than {} MiB in all", MAX_INCLUDED_BYTES >> 20), "include each file once")
            );
        }
        Ok((canonical, text))
    }

    /// The statements of `text`, the file at `path`, `depth` includes down.
    fn file(&mut self, path: &Path, text: &str, depth: usize) -> Result<(), ImportError> {
        let name = path.to_string_lossy().into_owned();
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let mut logical = String::new();
        let mut start = 0;
        for (i, raw) in text.lines().enumerate() {
            let no_comment = raw.split('#').next().unwrap_or("");
            if logical.is_empty() {
                start = i + 1;
            }
            if let Some(cont) = no_comment.trim_end().strip_suffix('\\') {
                logical.push_str(cont);
                logical.push(' ');
                continue;
            }
            logical.push_str(no_comment);
            let text = std::mem::take(&mut logical);
            let column = text.chars().take_while(|c| c.is_whitespace()).count() + 1;
            let line = Line { file: &name, number: start, column, text };
            if line.text.trim().is_empty() {
                continue;
            }
            self.statement(&line, &dir, depth)?;
        }
        Ok(())
    }

    fn statement(&mut self, line: &Line<'_>, dir: &Path, depth: usize) -> Result<(), ImportError> {
        let trimmed = line.text.trim();
        if let Some(rest) = trimmed.strip_prefix("@include") {
            if depth + 1 >= 10 {
                return Err(line.err("@include nested more than 10 files deep", "minijail stops at 10 too"));
            }
            let (path, text) = self.read(&dir.join(rest.trim()), line)?;
            let _ = writeln!(self.rules, "    # (included from {})", comment_text(rest.trim()));
            return self.file(&path, &text, depth + 1);
        }
        if let Some(rest) = trimmed.strip_prefix("@frequency") {
            let (_, text) = self.read(&dir.join(rest.trim()), line)?;
            for (n, l) in text.lines().enumerate() {
                let l = l.split('#').next().unwrap_or("").trim();
                if l.is_empty() {
                    continue;
                }
                let bad = || ImportError::Parse {
                    source_name: comment_text(rest.trim()),
                    location: format!("{}:1", n + 1),
                    message: "not a `NAME: COUNT` line".into(),
                    help: "a frequency file has one `syscall: count` per line".into(),
                };
                let (sys, count) = l.split_once(':').ok_or_else(bad)?;
                let count: u64 = count.trim().parse().map_err(|_| bad())?;
                let sys = sys.trim();
                if self.tables.arch.table().syscall(sys).is_some() {
                    let total = self.frequency.entry(sys.to_string()).or_default();
                    *total = total.saturating_add(count);
                }
            }
            return Ok(());
        }
        if trimmed == "@denylist" {
            self.denylist = true;
            return Ok(());
        }
        let toks = tokenize(line, trimmed)?;
        let mut p = Parser { toks: &toks, at: 0, line, tables: &self.tables, depth: 0 };
        if trimmed.starts_with("@default") {
            p.at = 1;
            let a = p.action()?;
            self.default = Some(a.text());
            return Ok(());
        }
        if trimmed.starts_with('{') {
            return Err(ImportError::Inexpressible {
                source_name: line.file.to_string(),
                location: line.at(),
                construct: "the braces form (`{a, b}: ...` or `: {filter, filter}`)".into(),
                help: "it is minijail's Python compiler's extension; write one line per syscall".into(),
            });
        }
        let syscall = match p.next() {
            Some(Tok::Ident(s)) => s,
            other => return Err(line.err(format!("expected a syscall name, found {}", show(other.as_ref())), SYNTAX)),
        };
        if p.peek() == Some(&Tok::Sym("[")) {
            return Err(ImportError::Inexpressible {
                source_name: line.file.to_string(),
                location: line.at(),
                construct: "syscall metadata (`NAME[arch=...]`)".into(),
                help: "import the file for one architecture and leave out the lines of others".into(),
            });
        }
        if p.next() != Some(Tok::Sym(":")) {
            return Err(line.err("expected `:` after the syscall name", SYNTAX));
        }
        self.known(line, &syscall)?;
        let _ = writeln!(
            self.rules,
            "    # {}:{}: {}",
            comment_text(line.file.rsplit('/').next().unwrap_or("")),
            line.number,
            comment_text(trimmed)
        );
        let is_expr = matches!(p.peek(), Some(Tok::Ident(a)) if a.starts_with("arg") && a[3..].parse::<u8>().is_ok());
        if !is_expr {
            let a = p.action()?;
            self.end(&p)?;
            if self.denylist && !matches!(a, Action::Errno(_)) {
                return Err(line.err("a denylist policy must `return` an errno on every line", "write `NAME: return ERRNO`"));
            }
            let _ = writeln!(self.rules, "    {} {syscall}", a.text());
            return Ok(());
        }
        let clauses = p.expression()?;
        let otherwise = if p.eat(";") { Some(p.action()?) } else { None };
        self.end(&p)?;
        let arch = self.tables.arch;
        let mut texts = Vec::new();
        for clause in &clauses {
            let atoms: Result<Vec<String>, String> = clause.iter().map(|a| atom_text(a, arch, &syscall)).collect();
            let atoms = atoms.map_err(|m| ImportError::Inexpressible {
                source_name: line.file.to_string(),
                location: line.at(),
                construct: m,
                help: "the comparison hinges on bits the kernel ignores; compare the bits it reads".into(),
            })?;
            texts.push(atoms.join(" && "));
        }
        if self.denylist {
            match otherwise {
                Some(a @ Action::Errno(_)) => {
                    self.rules += &rules_for(&format!("{} {syscall}", a.text()), &texts, true);
                }
                _ => return Err(line.err("a denylist policy must `return` an errno on every line", "write `NAME: EXPR; return ERRNO`")),
            }
        } else {
            self.rules += &rules_for(&format!("allow {syscall}"), &texts, true);
            if let Some(a) = otherwise {
                let _ = writeln!(self.rules, "    {} {syscall}", a.text());
            }
        }
        Ok(())
    }

    fn end(&self, p: &Parser<'_, '_>) -> Result<(), ImportError> {
        match p.peek() {
            None => Ok(()),
            Some(t) => Err(p.line.err(format!("unexpected {} after the statement", show(Some(t))), SYNTAX)),
        }
    }

    fn known(&self, line: &Line<'_>, syscall: &str) -> Result<(), ImportError> {
        let arch = self.tables.arch;
        let in_minijail = self.tables.syscalls.as_ref().is_none_or(|s| s.contains_key(syscall));
        match (arch.table().syscall(syscall), in_minijail) {
            (Some(_), true) => Ok(()),
            (Some(_), false) => Err(line.err(
                format!("`{}` is not a syscall in constants.json", comment_text(syscall)),
                "minijail refuses it too (nonexistent syscall)",
            )),
            (None, _) => Err(ImportError::Value {
                source_name: line.file.to_string(),
                location: line.at(),
                message: format!("`{}` is not a syscall of {arch} in scpc's tables", comment_text(syscall)),
                help: "a policy names syscalls the tables know; check the name (or the architecture)".into(),
            }),
        }
    }
}

fn read_constants(files: &dyn Files, path: &Path) -> Result<ConstantsJson, ImportError> {
    let name = comment_text(&path.to_string_lossy());
    let text = files.read(path).map_err(|e| ImportError::Unreadable { path: name.clone(), reason: e.to_string() })?;
    let mut de = serde_json::Deserializer::from_str(&text);
    serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let at = e.path().to_string();
        let inner = e.into_inner();
        ImportError::Parse {
            source_name: name,
            location: format!("{}:{} ({at})", inner.line(), inner.column()),
            message: comment_text(&inner.to_string()),
            help: "minijail's constants.json has arch_nr, bits, constants and syscalls".into(),
        }
    })
}

/// Imports the minijail policy at `path` (reading it, its includes, its frequency file and
/// `constants.json` through `files`). What it returns always checks.
pub fn import(path: &Path, opts: &MinijailOptions, files: &dyn Files) -> Result<Imported, ImportError> {
    let source_name = path.to_string_lossy().into_owned();
    let beside = path.with_file_name("constants.json");
    let constants_path = opts.constants.clone().or_else(|| files.read(&beside).is_ok().then_some(beside));
    let json = constants_path.as_deref().map(|p| read_constants(files, p)).transpose()?;
    let from_json = json.as_ref().and_then(|j| Arch::ALL.into_iter().find(|a| a.table().audit_arch == j.arch_nr && *a != Arch::X32));
    let arch = match (opts.arch, from_json) {
        (Some(a), _) | (None, Some(a)) => a,
        (None, None) => {
            return Err(ImportError::Value {
                source_name: comment_text(&source_name),
                location: "--arch".into(),
                message: "the architecture is not known".into(),
                help: "name it with --arch, or give minijail's constants.json with --constants".into(),
            })
        }
    };
    let bits = json.as_ref().and_then(|j| j.bits).unwrap_or(if arch.is_32bit() { 32 } else { 64 });
    let word = if bits == 32 { 0xffff_ffffu64 } else { u64::MAX };
    let constants = json
        .as_ref()
        .map(|j| {
            j.constants
                .iter()
                .filter_map(|(k, v)| v.as_u64().or_else(|| v.as_i64().map(|i| i as u64)).map(|v| (k.clone(), v & word)))
                .collect()
        })
        .unwrap_or_default();
    let syscalls = json.as_ref().map(|j| j.syscalls.clone());
    let root_dir = std::fs::canonicalize(path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new(".")))
        .unwrap_or_else(|_| PathBuf::from("."));
    let mut state = Import {
        files,
        root_dir,
        tables: Tables { arch, constants, syscalls },
        default: None,
        denylist: false,
        frequency: BTreeMap::new(),
        rules: String::new(),
        included: 0,
        reads: 0,
    };
    let text = files.read(path).map_err(|e| ImportError::Unreadable { path: comment_text(&source_name), reason: e.to_string() })?;
    state.file(path, &text, 0)?;
    let name = match &opts.name {
        Some(n) => n.clone(),
        None => policy_name(&path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default()),
    };
    let default = match (&state.default, state.denylist) {
        (Some(d), _) => d.clone(),
        (None, true) => "allow".into(),
        (None, false) => "kill_process".into(),
    };
    let mut out = String::new();
    let _ = writeln!(out, "# Imported by `scpc import minijail` from {} for {arch}.", comment_text(&source_name));
    match &constants_path {
        Some(c) => {
            let _ = writeln!(out, "# Constants from {}; each rule follows its line of the source.", comment_text(&c.to_string_lossy()));
        }
        None => {
            let _ = writeln!(out, "# Constants from scpc's tables for {arch}; each rule follows its line of the source.");
        }
    }
    if state.denylist {
        let _ = writeln!(out, "# A denylist (@denylist): what no line denies is allowed.");
    }
    let _ = writeln!(out, "\npolicy {name} {{");
    let _ = writeln!(out, "    target {arch}");
    let _ = writeln!(out, "    default {default}");
    out.push_str(&state.rules);
    out.push_str("}\n");
    let policy = checked(&source_name, out)?;
    let profile = (!state.frequency.is_empty()).then(|| {
        let mut rows: Vec<(&String, &u64)> = state.frequency.iter().collect();
        rows.sort_by(|a, b| b.1.cmp(a.1).then_with(|| a.0.cmp(b.0)));
        let mut tsv = String::from("# syscall\tcount\n");
        for (s, c) in rows {
            let _ = writeln!(tsv, "{s}\t{c}");
        }
        tsv
    });
    Ok(Imported { policy, profile })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_as_strtol_reads_them() {
        assert_eq!(parse_number("0x10"), Some(16));
        assert_eq!(parse_number("010"), Some(8));
        assert_eq!(parse_number("10"), Some(10));
        assert_eq!(parse_number("-100"), Some((-100i64) as u64));
        assert_eq!(parse_number("08"), None);
    }

    #[test]
    fn values_fit_the_width_the_kernel_reads() {
        assert_eq!(fit((-100i64) as u64, Width::W32), Some(0xffff_ff9c));
        assert_eq!(fit(0x1_0000_0000, Width::W32), None);
        assert_eq!(fit(7, Width::W16), Some(7));
    }
}
