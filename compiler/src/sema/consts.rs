//! Names to numbers and syscall sets: const expressions per architecture (uapi constants
//! differ between architectures), group expansion, and actions with their data.

use scpc_lang::ast::{self, BinaryOp, ExprKind, SyscallRef, UnaryOp};
use scpc_lang::source::Span;

use super::{Checker, SemaError};
use crate::abi::{all_constant_names, all_syscall_names, Arch};
use crate::policy::Action;
use crate::suggest::did_you_mean;

impl<'u> Checker<'u, '_> {
    /// Evaluates every const once (on x86_64) so that unknown names, cycles and bad shifts are
    /// reported even in consts no rule uses. Gaps of single architectures are reported where
    /// a rule uses the const on that architecture.
    pub fn check_consts(&mut self) {
        let mut names: Vec<&'u str> = self.scope.consts.keys().copied().collect();
        names.sort_unstable();
        for name in names {
            let decl = self.scope.consts[name];
            self.const_value(name, decl.name.span, Arch::X86_64, false);
        }
    }

    fn const_value(&mut self, name: &'u str, use_span: Span, arch: Arch, report_gaps: bool) -> Option<u64> {
        if let Some(v) = self.const_memo.get(&(name, arch)) {
            return *v;
        }
        if self.const_stack.contains(&name) {
            self.diags.push(SemaError::ConstCycle { name: name.to_string(), span: use_span.into() });
            return None;
        }
        let decl = self.scope.consts[name];
        self.const_stack.push(name);
        let v = self.eval_inner(&decl.value, arch, report_gaps);
        self.const_stack.pop();
        if report_gaps || v.is_some() {
            self.const_memo.insert((name, arch), v);
        }
        v
    }

    /// The value of an expression on an architecture; `None` when it has an error (reported).
    pub fn eval(&mut self, e: &'u ast::Expr, arch: Arch) -> Option<u64> {
        self.eval_inner(e, arch, true)
    }

    fn eval_inner(&mut self, e: &'u ast::Expr, arch: Arch, report_gaps: bool) -> Option<u64> {
        match &e.kind {
            ExprKind::Number(n) => Some(n.value),
            ExprKind::Name(id) => self.name_value(id, arch, report_gaps),
            ExprKind::Unary(op, x) => {
                let v = self.eval_inner(x, arch, report_gaps)?;
                Some(match op {
                    UnaryOp::BitNot => !v,
                    UnaryOp::Neg => v.wrapping_neg(),
                })
            }
            ExprKind::Binary(op, a, b) => {
                let (a, b) = (self.eval_inner(a, arch, report_gaps), self.eval_inner(b, arch, report_gaps));
                let (a, b) = (a?, b?);
                match op {
                    BinaryOp::Or => Some(a | b),
                    BinaryOp::And => Some(a & b),
                    BinaryOp::Shl | BinaryOp::Shr if b >= 64 => {
                        self.diags.push(SemaError::BadShift { amount: b, span: e.span.into() });
                        None
                    }
                    BinaryOp::Shl => Some(a << b),
                    BinaryOp::Shr => Some(a >> b),
                }
            }
        }
    }

    fn name_value(&mut self, id: &'u ast::Ident, arch: Arch, report_gaps: bool) -> Option<u64> {
        if self.scope.consts.contains_key(id.name.as_str()) {
            return self.const_value(&id.name, id.span, arch, report_gaps);
        }
        if let Some(v) = arch.table().constant(&id.name) {
            return Some(v);
        }
        let defined_on: Vec<&str> = Arch::ALL.iter().filter(|a| a.table().constant(&id.name).is_some()).map(|a| a.name()).collect();
        if defined_on.is_empty() {
            let candidates = self.scope.consts.keys().copied().chain(all_constant_names().iter().copied());
            let help = did_you_mean(&id.name, candidates, "define it with `const NAME = VALUE`, or write the number");
            self.diags.push(SemaError::UnknownConst { name: id.name.clone(), span: id.span.into(), help });
        } else if report_gaps {
            let help = format!("it is defined on {} only; restrict the rule to those targets or write the number", defined_on.join(", "));
            self.diags.push(SemaError::ConstNotOnArch { name: id.name.clone(), arch: arch.to_string(), span: id.span.into(), help });
        }
        None
    }

    /// Checks every group: members exist, groups exist, no cycles.
    pub fn check_groups(&mut self) {
        let mut names: Vec<&'u str> = self.scope.groups.keys().copied().collect();
        names.sort_unstable();
        for name in names {
            self.group(name, self.scope.groups[name].name.span);
        }
    }

    /// The syscall names of a group, nested groups expanded, sorted. `None` if unknown or in a
    /// cycle (reported).
    pub fn group(&mut self, name: &'u str, use_span: Span) -> Option<Vec<&'u str>> {
        if let Some(v) = self.group_memo.get(name) {
            return v.clone();
        }
        let Some(&decl) = self.scope.groups.get(name) else {
            let help =
                did_you_mean(name, self.scope.groups.keys().copied(), "define it with `group NAME = ...`, or include \"std/groups.scp\"");
            self.diags.push(SemaError::UnknownGroup { name: name.to_string(), span: use_span.into(), help });
            return None;
        };
        if self.group_stack.contains(&name) {
            self.diags.push(SemaError::GroupCycle { name: name.to_string(), span: use_span.into() });
            return None;
        }
        self.group_stack.push(name);
        let mut out = Vec::new();
        for m in &decl.members {
            match m {
                SyscallRef::Syscall(id) => {
                    if self.known_syscall(id) {
                        out.push(id.name.as_str());
                    }
                }
                SyscallRef::Group(id) => out.extend(self.group(&id.name, id.span).unwrap_or_default()),
            }
        }
        self.group_stack.pop();
        out.sort_unstable();
        out.dedup();
        self.group_memo.insert(name, Some(out.clone()));
        Some(out)
    }

    /// Whether a syscall name exists on some architecture; reports it if not.
    pub fn known_syscall(&mut self, id: &ast::Ident) -> bool {
        if all_syscall_names().binary_search(&id.name.as_str()).is_ok() {
            return true;
        }
        let help = did_you_mean(&id.name, all_syscall_names().iter().copied(), "`scpc syscalls` lists the names of each architecture");
        self.diags.push(SemaError::UnknownSyscall { name: id.name.clone(), span: id.span.into(), help });
        false
    }

    /// A rule's syscall list expanded: (name, the reference it came from, whether it was named
    /// directly), each name once, in list order.
    pub fn expand(&mut self, refs: &'u [SyscallRef]) -> Vec<(&'u str, &'u SyscallRef, bool)> {
        let mut out: Vec<(&'u str, &'u SyscallRef, bool)> = Vec::new();
        for r in refs {
            let names = match r {
                SyscallRef::Syscall(id) => {
                    if self.known_syscall(id) {
                        vec![id.name.as_str()]
                    } else {
                        vec![]
                    }
                }
                SyscallRef::Group(id) => self.group(&id.name, id.span).unwrap_or_default(),
            };
            for n in names {
                if !out.iter().any(|(m, _, _)| *m == n) {
                    out.push((n, r, matches!(r, SyscallRef::Syscall(_))));
                }
            }
        }
        out
    }

    /// An action with its data checked (errno names and range, 16-bit trap/trace data).
    pub fn action(&mut self, a: &'u ast::Action, arch: Arch) -> Option<Action> {
        use ast::ActionKind as K;
        let data = match (&a.data, a.kind) {
            (Some(e), K::Errno) => Some(self.errno(e, arch)?),
            (Some(e), _) => Some(self.eval(e, arch)?),
            (None, _) => None,
        };
        let data16 = |this: &mut Self, name: &'static str| -> Option<u16> {
            let v = data.unwrap_or(0);
            u16::try_from(v).ok().or_else(|| {
                let span = a.data.as_ref().map_or(a.span, |e| e.span);
                this.diags.push(SemaError::ActionDataRange { action: name, value: v, span: span.into() });
                None
            })
        };
        Some(match a.kind {
            K::Allow => Action::Allow,
            K::Log => Action::Log,
            K::Notify => Action::Notify,
            K::KillThread => Action::KillThread,
            K::KillProcess => Action::KillProcess,
            K::Trap => Action::Trap(data16(self, "trap")?),
            K::Trace => Action::Trace(data16(self, "trace")?),
            K::Errno => {
                let v = data.unwrap_or(0);
                if v > 4095 {
                    let span = a.data.as_ref().map_or(a.span, |e| e.span);
                    self.diags.push(SemaError::ErrnoRange { value: v, span: span.into() });
                    return None;
                }
                Action::Errno(v as u16)
            }
        })
    }

    fn errno(&mut self, e: &'u ast::Expr, arch: Arch) -> Option<u64> {
        if let ExprKind::Name(id) = &e.kind {
            let is_const = self.scope.consts.contains_key(id.name.as_str());
            let is_errno = id.name.starts_with('E') && arch.table().constant(&id.name).is_some();
            if !is_const && !is_errno {
                let errnos = all_constant_names().iter().copied().filter(|n| n.starts_with('E'));
                let help = did_you_mean(&id.name, errnos, "use an errno name such as EPERM, EACCES or ENOSYS, or a number 0..4095");
                self.diags.push(SemaError::UnknownErrno { name: id.name.clone(), span: id.span.into(), help });
                return None;
            }
        }
        self.eval(e, arch)
    }
}
