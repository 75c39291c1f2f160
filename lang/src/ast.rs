//! The owned syntax tree. Every node carries the [`Span`] of the text it came from; nothing here
//! knows about kernels, architectures or syscall numbers.

use crate::source::{FileId, Span};

/// A name as written, with where it was written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ident {
    /// The text.
    pub name: String,
    /// Where.
    pub span: Span,
}

/// One parsed file.
#[derive(Clone, Debug, PartialEq)]
pub struct File {
    /// The file in the source map.
    pub file: FileId,
    /// Its items, in source order.
    pub items: Vec<Item>,
    /// Its comments, in source order (kept for the formatter).
    pub comments: Vec<Comment>,
    /// The whole file.
    pub span: Span,
}

/// A `#` comment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Comment {
    /// The text after `#`, trailing blanks removed.
    pub text: String,
    /// Where, `#` included.
    pub span: Span,
}

/// A top-level item.
#[derive(Clone, Debug, PartialEq)]
pub enum Item {
    /// `include "PATH"`.
    Include(Include),
    /// `const NAME = EXPR`.
    Const(ConstDecl),
    /// `group NAME = MEMBERS`.
    Group(GroupDecl),
    /// `policy NAME [extends P] { ... }`.
    Policy(PolicyDecl),
    /// `test POLICY { ... }`.
    Test(TestDecl),
}

impl Item {
    /// The item's span.
    pub fn span(&self) -> Span {
        match self {
            Item::Include(x) => x.span,
            Item::Const(x) => x.span,
            Item::Group(x) => x.span,
            Item::Policy(x) => x.span,
            Item::Test(x) => x.span,
        }
    }
}

/// `include "PATH"`.
#[derive(Clone, Debug, PartialEq)]
pub struct Include {
    /// The path, escapes resolved.
    pub path: String,
    /// The string literal.
    pub path_span: Span,
    /// The whole item.
    pub span: Span,
}

/// `const NAME = EXPR`.
#[derive(Clone, Debug, PartialEq)]
pub struct ConstDecl {
    /// The name.
    pub name: Ident,
    /// The value.
    pub value: Expr,
    /// The whole item.
    pub span: Span,
}

/// `group NAME = MEMBER, ...`.
#[derive(Clone, Debug, PartialEq)]
pub struct GroupDecl {
    /// The name, without `@`.
    pub name: Ident,
    /// The members.
    pub members: Vec<SyscallRef>,
    /// The whole item.
    pub span: Span,
}

/// A member of a syscall list.
#[derive(Clone, Debug, PartialEq)]
pub enum SyscallRef {
    /// A syscall name.
    Syscall(Ident),
    /// `@group` (the ident holds the name without `@`; its span covers the `@`).
    Group(Ident),
}

impl SyscallRef {
    /// The member's span.
    pub fn span(&self) -> Span {
        match self {
            SyscallRef::Syscall(i) | SyscallRef::Group(i) => i.span,
        }
    }
}

/// `policy NAME [extends PARENT] { ... }`.
#[derive(Clone, Debug, PartialEq)]
pub struct PolicyDecl {
    /// The name.
    pub name: Ident,
    /// The parent, if any.
    pub extends: Option<Ident>,
    /// The statements, in source order.
    pub stmts: Vec<Stmt>,
    /// The whole item.
    pub span: Span,
}

/// A statement of a policy body.
#[derive(Clone, Debug, PartialEq)]
pub struct Stmt {
    /// What it says.
    pub kind: StmtKind,
    /// The whole statement.
    pub span: Span,
}

/// The kinds of statement.
#[derive(Clone, Debug, PartialEq)]
pub enum StmtKind {
    /// `target ARCH, ...`.
    Target(Vec<Ident>),
    /// `kernel >= MAJOR.MINOR`.
    Kernel(Version),
    /// `default ACTION`.
    Default(Action),
    /// `badarch ACTION`.
    BadArch(Action),
    /// `newer ACTION`.
    Newer(Action),
    /// `[final] ACTION SYSCALLS [if COND]`.
    Rule(Rule),
}

/// `MAJOR.MINOR`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Version {
    /// Major number.
    pub major: u16,
    /// Minor number.
    pub minor: u16,
    /// Where.
    pub span: Span,
}

/// A rule.
#[derive(Clone, Debug, PartialEq)]
pub struct Rule {
    /// The span of `final`, if the rule is a guard rail.
    pub final_span: Option<Span>,
    /// What it decides.
    pub action: Action,
    /// What it applies to.
    pub syscalls: Vec<SyscallRef>,
    /// `on ARCH, ...`: the architectures it applies on (empty: every target).
    pub archs: Vec<Ident>,
    /// When it applies.
    pub cond: Option<Cond>,
}

/// An action as written.
#[derive(Clone, Debug, PartialEq)]
pub struct Action {
    /// Which.
    pub kind: ActionKind,
    /// The data of `errno(N)`, `trap(N)`, `trace(N)`.
    pub data: Option<Expr>,
    /// Where.
    pub span: Span,
}

/// The seccomp actions (`kill` is parsed as [`ActionKind::KillProcess`]).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ActionKind {
    /// SECCOMP_RET_ALLOW.
    Allow,
    /// SECCOMP_RET_LOG.
    Log,
    /// SECCOMP_RET_ERRNO.
    Errno,
    /// SECCOMP_RET_TRAP.
    Trap,
    /// SECCOMP_RET_TRACE.
    Trace,
    /// SECCOMP_RET_USER_NOTIF.
    Notify,
    /// SECCOMP_RET_KILL_THREAD.
    KillThread,
    /// SECCOMP_RET_KILL_PROCESS.
    KillProcess,
}

impl ActionKind {
    /// The keyword.
    pub fn keyword(self) -> &'static str {
        match self {
            ActionKind::Allow => "allow",
            ActionKind::Log => "log",
            ActionKind::Errno => "errno",
            ActionKind::Trap => "trap",
            ActionKind::Trace => "trace",
            ActionKind::Notify => "notify",
            ActionKind::KillThread => "kill_thread",
            ActionKind::KillProcess => "kill_process",
        }
    }
}

/// A number expression.
#[derive(Clone, Debug, PartialEq)]
pub struct Expr {
    /// What it is.
    pub kind: ExprKind,
    /// Where.
    pub span: Span,
}

/// The kinds of number expression.
#[derive(Clone, Debug, PartialEq)]
pub enum ExprKind {
    /// A literal.
    Number(Number),
    /// A const or uapi constant.
    Name(Ident),
    /// A unary operator.
    Unary(UnaryOp, Box<Expr>),
    /// A binary operator.
    Binary(BinaryOp, Box<Expr>, Box<Expr>),
}

/// A literal with the radix it was written in (the formatter keeps it).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Number {
    /// The value.
    pub value: u64,
    /// 2, 8, 10 or 16.
    pub radix: u32,
}

/// Unary operators.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum UnaryOp {
    /// `~`.
    BitNot,
    /// `-` (two's complement on 64 bits).
    Neg,
}

/// Binary operators, loosest first.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum BinaryOp {
    /// `|`.
    Or,
    /// `&`.
    And,
    /// `<<`.
    Shl,
    /// `>>`.
    Shr,
}

impl BinaryOp {
    /// Binding strength: higher binds tighter.
    pub fn precedence(self) -> u8 {
        match self {
            BinaryOp::Or => 1,
            BinaryOp::And => 2,
            BinaryOp::Shl | BinaryOp::Shr => 3,
        }
    }
    /// The operator as written.
    pub fn symbol(self) -> &'static str {
        match self {
            BinaryOp::Or => "|",
            BinaryOp::And => "&",
            BinaryOp::Shl => "<<",
            BinaryOp::Shr => ">>",
        }
    }
}

/// A condition.
#[derive(Clone, Debug, PartialEq)]
pub struct Cond {
    /// What it is.
    pub kind: CondKind,
    /// Where.
    pub span: Span,
}

/// The kinds of condition.
#[derive(Clone, Debug, PartialEq)]
pub enum CondKind {
    /// `A && B`.
    And(Box<Cond>, Box<Cond>),
    /// `A || B`.
    Or(Box<Cond>, Box<Cond>),
    /// `!A`.
    Not(Box<Cond>),
    /// `ARG [& MASK] OP VALUE`.
    Compare {
        /// The argument, by name or `argN`.
        arg: Ident,
        /// `& MASK`.
        mask: Option<Expr>,
        /// The operator.
        op: CmpOp,
        /// The right side.
        value: Expr,
    },
    /// `ARG [& MASK] [not] in {...}`.
    In {
        /// The argument.
        arg: Ident,
        /// `& MASK`.
        mask: Option<Expr>,
        /// `not in`.
        negated: bool,
        /// The members.
        set: Vec<Expr>,
    },
}

/// Comparison operators; all compare unsigned.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum CmpOp {
    /// `==`.
    Eq,
    /// `!=`.
    Ne,
    /// `<`.
    Lt,
    /// `<=`.
    Le,
    /// `>`.
    Gt,
    /// `>=`.
    Ge,
}

impl CmpOp {
    /// The operator as written.
    pub fn symbol(self) -> &'static str {
        match self {
            CmpOp::Eq => "==",
            CmpOp::Ne => "!=",
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
        }
    }
}

/// `test POLICY { ... }`.
#[derive(Clone, Debug, PartialEq)]
pub struct TestDecl {
    /// The policy under test.
    pub policy: Ident,
    /// Lines and `on ARCH` blocks.
    pub items: Vec<TestItem>,
    /// The whole item.
    pub span: Span,
}

/// A test line, or a block of lines for one architecture.
#[derive(Clone, Debug, PartialEq)]
pub enum TestItem {
    /// `CALL -> EXPECTED`.
    Case(TestCase),
    /// `on ARCH { ... }`.
    On {
        /// The architecture.
        arch: Ident,
        /// Its lines.
        cases: Vec<TestCase>,
        /// The whole block.
        span: Span,
    },
}

/// `name[(ARG, ...)] -> EXPECTED`.
#[derive(Clone, Debug, PartialEq)]
pub struct TestCase {
    /// The syscall.
    pub syscall: Ident,
    /// The arguments; `None` when no parentheses were written.
    pub args: Option<Vec<TestArg>>,
    /// What the filter must decide.
    pub expected: Expected,
    /// The whole line.
    pub span: Span,
}

/// A test call argument.
#[derive(Clone, Debug, PartialEq)]
pub enum TestArg {
    /// `*`: any value.
    Any(Span),
    /// A value.
    Value(Expr),
}

/// The expectation of a test line.
#[derive(Clone, Debug, PartialEq)]
pub enum Expected {
    /// An action.
    Action(Action),
    /// `unknown`: the syscall does not exist on that architecture.
    Unknown(Span),
}

/// Calls `f` on every span in a file, parents before children. Used to compare trees without
/// their positions (`parse(fmt(x)) == parse(x)`) and to check span invariants in tests.
pub fn for_each_span_mut(file: &mut File, f: &mut impl FnMut(&mut Span)) {
    f(&mut file.span);
    for c in &mut file.comments {
        f(&mut c.span);
    }
    for item in &mut file.items {
        match item {
            Item::Include(x) => {
                f(&mut x.span);
                f(&mut x.path_span);
            }
            Item::Const(x) => {
                f(&mut x.span);
                f(&mut x.name.span);
                expr_spans(&mut x.value, f);
            }
            Item::Group(x) => {
                f(&mut x.span);
                f(&mut x.name.span);
                x.members.iter_mut().for_each(|m| ref_span(m, f));
            }
            Item::Policy(x) => policy_spans(x, f),
            Item::Test(x) => {
                f(&mut x.span);
                f(&mut x.policy.span);
                for t in &mut x.items {
                    match t {
                        TestItem::Case(c) => case_spans(c, f),
                        TestItem::On { arch, cases, span } => {
                            f(span);
                            f(&mut arch.span);
                            cases.iter_mut().for_each(|c| case_spans(c, f));
                        }
                    }
                }
            }
        }
    }
}

fn ref_span(r: &mut SyscallRef, f: &mut impl FnMut(&mut Span)) {
    match r {
        SyscallRef::Syscall(i) | SyscallRef::Group(i) => f(&mut i.span),
    }
}

fn policy_spans(p: &mut PolicyDecl, f: &mut impl FnMut(&mut Span)) {
    f(&mut p.span);
    f(&mut p.name.span);
    if let Some(e) = &mut p.extends {
        f(&mut e.span);
    }
    for s in &mut p.stmts {
        f(&mut s.span);
        match &mut s.kind {
            StmtKind::Target(archs) => archs.iter_mut().for_each(|a| f(&mut a.span)),
            StmtKind::Kernel(v) => f(&mut v.span),
            StmtKind::Default(a) | StmtKind::BadArch(a) | StmtKind::Newer(a) => action_spans(a, f),
            StmtKind::Rule(r) => {
                if let Some(s) = &mut r.final_span {
                    f(s);
                }
                action_spans(&mut r.action, f);
                r.syscalls.iter_mut().for_each(|m| ref_span(m, f));
                r.archs.iter_mut().for_each(|a| f(&mut a.span));
                if let Some(c) = &mut r.cond {
                    cond_spans(c, f);
                }
            }
        }
    }
}

fn action_spans(a: &mut Action, f: &mut impl FnMut(&mut Span)) {
    f(&mut a.span);
    if let Some(e) = &mut a.data {
        expr_spans(e, f);
    }
}

fn expr_spans(e: &mut Expr, f: &mut impl FnMut(&mut Span)) {
    f(&mut e.span);
    match &mut e.kind {
        ExprKind::Number(_) => {}
        ExprKind::Name(i) => f(&mut i.span),
        ExprKind::Unary(_, x) => expr_spans(x, f),
        ExprKind::Binary(_, a, b) => {
            expr_spans(a, f);
            expr_spans(b, f);
        }
    }
}

fn cond_spans(c: &mut Cond, f: &mut impl FnMut(&mut Span)) {
    f(&mut c.span);
    match &mut c.kind {
        CondKind::And(a, b) | CondKind::Or(a, b) => {
            cond_spans(a, f);
            cond_spans(b, f);
        }
        CondKind::Not(a) => cond_spans(a, f),
        CondKind::Compare { arg, mask, value, .. } => {
            f(&mut arg.span);
            if let Some(m) = mask {
                expr_spans(m, f);
            }
            expr_spans(value, f);
        }
        CondKind::In { arg, mask, set, .. } => {
            f(&mut arg.span);
            if let Some(m) = mask {
                expr_spans(m, f);
            }
            set.iter_mut().for_each(|e| expr_spans(e, f));
        }
    }
}

fn case_spans(c: &mut TestCase, f: &mut impl FnMut(&mut Span)) {
    f(&mut c.span);
    f(&mut c.syscall.span);
    for a in c.args.iter_mut().flatten() {
        match a {
            TestArg::Any(s) => f(s),
            TestArg::Value(e) => expr_spans(e, f),
        }
    }
    match &mut c.expected {
        Expected::Action(a) => action_spans(a, f),
        Expected::Unknown(s) => f(s),
    }
}

impl File {
    /// The items with every span zeroed (comments dropped): what the file *means*, for
    /// comparing two parses of different text.
    pub fn without_spans(&self) -> Vec<Item> {
        let mut copy = self.clone();
        copy.comments.clear();
        for_each_span_mut(&mut copy, &mut |s| *s = Span::default());
        copy.items
    }
}
