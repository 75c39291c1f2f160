//! Names to numbers and syscall sets: const expressions per architecture (uapi constants
//! differ between architectures), group expansion, and actions with their data.

use std::collections::{BTreeSet, HashSet};

use scpc_lang::ast::{self, BinaryOp, ExprKind, SyscallRef, UnaryOp};
use scpc_lang::source::Span;

use super::{Checker, Scope, SemaError};
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
            if all_constant_names().binary_search(&name).is_ok() {
                // a const named like a uapi constant, errno or signal would silently change
                // the meaning of every rule that uses the name (`const PROT_EXEC = 0`)
                let archs: Vec<&str> = Arch::ALL.iter().filter(|a| a.table().constant(name).is_some()).map(|a| a.name()).collect();
                self.diags.push(SemaError::ShadowsUapi {
                    name: name.to_string(),
                    span: decl.name.span.into(),
                    help: format!(
                        "`{name}` is the kernel's constant (on {}); give your const another name, or use the kernel's directly",
                        archs.join(", ")
                    ),
                });
            }
            self.const_value(name, decl.name.span, Arch::X86_64, false);
        }
    }

    /// The value of a const on an architecture. The consts it is defined through are
    /// evaluated first, in an explicit depth-first order, so that a chain of consts however long
    /// never recurses deeper than one const's own expression.
    fn const_value(&mut self, name: &'u str, use_span: Span, arch: Arch, report_gaps: bool) -> Option<u64> {
        if let Some(v) = self.const_memo.get(&(name, arch, true)).or_else(|| self.const_memo.get(&(name, arch, report_gaps))) {
            return *v;
        }
        for dep in self.const_order(name, use_span, arch, report_gaps) {
            let decl = self.scope.consts[dep];
            let v = self.eval_inner(&decl.value, arch, report_gaps);
            self.const_memo.insert((dep, arch, report_gaps), v);
        }
        self.const_memo.get(&(name, arch, report_gaps)).copied().flatten()
    }

    /// The consts `name` is defined through that have no value yet on `arch`, dependencies
    /// before the consts that use them, `name` last. A const reached again while its own
    /// definition is being followed closes a cycle: reported where it is used, and its value is
    /// fixed as unknown.
    fn const_order(&mut self, name: &'u str, use_span: Span, arch: Arch, report_gaps: bool) -> Vec<&'u str> {
        let memo =
            |ck: &Self, n: &'u str| ck.const_memo.contains_key(&(n, arch, true)) || ck.const_memo.contains_key(&(n, arch, report_gaps));
        let mut order = Vec::new();
        let mut on_path: HashSet<&'u str> = HashSet::new();
        let mut done: HashSet<&'u str> = HashSet::new();
        // (const, the span it was reached by, its references not yet followed)
        type Frame<'u> = (&'u str, Span, Vec<(&'u str, Span)>);
        let mut stack: Vec<Frame<'u>> = Vec::new();
        let enter = |ck: &mut Self, n: &'u str, span: Span, stack: &mut Vec<Frame<'u>>, on_path: &mut HashSet<&'u str>| {
            if on_path.contains(n) {
                // every const of the cycle is reported where the previous one uses it
                let from = stack.iter().position(|f| f.0 == n).unwrap_or(0);
                let mut members: Vec<(&'u str, Span)> = stack[from + 1..].iter().map(|f| (f.0, f.1)).collect();
                members.push((n, span));
                for (m, at) in members {
                    ck.diags.push(SemaError::ConstCycle { name: m.to_string(), span: at.into() });
                    ck.const_memo.insert((m, arch, true), None);
                }
                return;
            }
            let mut refs = Vec::new();
            const_refs(&ck.scope.consts[n].value, &ck.scope, &mut refs);
            refs.reverse();
            on_path.insert(n);
            stack.push((n, span, refs));
        };
        enter(self, name, use_span, &mut stack, &mut on_path);
        while let Some((n, _, refs)) = stack.last_mut() {
            let n = *n;
            match refs.pop() {
                Some((dep, span)) => {
                    if !done.contains(dep) && !memo(self, dep) {
                        enter(self, dep, span, &mut stack, &mut on_path);
                    }
                }
                None => {
                    stack.pop();
                    on_path.remove(n);
                    done.insert(n);
                    if !memo(self, n) {
                        order.push(n);
                    }
                }
            }
        }
        order
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
    /// cycle (reported). Nested groups are expanded first, in an explicit depth-first order, so
    /// that a chain of groups however long never recurses; each expansion is kept as a set of
    /// indices into the syscall names, so a long chain costs little memory.
    pub fn group(&mut self, name: &'u str, use_span: Span) -> Option<Vec<&'u str>> {
        if !self.group_memo.contains_key(name) {
            self.expand_groups(name, use_span);
        }
        let set = self.group_memo.get(name)?.as_ref()?;
        let names = all_syscall_names();
        Some(set.iter().map(|&i| names[i as usize]).collect())
    }

    fn expand_groups(&mut self, name: &'u str, use_span: Span) {
        let mut on_path: HashSet<&'u str> = HashSet::new();
        // (group, its member groups not yet followed)
        let mut stack: Vec<(&'u str, Vec<&'u ast::Ident>)> = Vec::new();
        let enter = |ck: &mut Self,
                     n: &'u str,
                     span: Span,
                     stack: &mut Vec<(&'u str, Vec<&'u ast::Ident>)>,
                     on_path: &mut HashSet<&'u str>| {
            let Some(&decl) = ck.scope.groups.get(n) else {
                let help =
                    did_you_mean(n, ck.scope.groups.keys().copied(), "define it with `group NAME = ...`, or include \"std/groups.scp\"");
                ck.diags.push(SemaError::UnknownGroup { name: n.to_string(), span: span.into(), help });
                return;
            };
            if on_path.contains(n) {
                ck.diags.push(SemaError::GroupCycle { name: n.to_string(), span: span.into() });
                return;
            }
            let mut subs: Vec<&'u ast::Ident> = decl
                .members
                .iter()
                .filter_map(|m| match m {
                    SyscallRef::Group(id) => Some(id),
                    SyscallRef::Syscall(_) => None,
                })
                .collect();
            subs.reverse();
            on_path.insert(n);
            stack.push((n, subs));
        };
        enter(self, name, use_span, &mut stack, &mut on_path);
        while let Some((n, subs)) = stack.last_mut() {
            let n = *n;
            if let Some(id) = subs.pop() {
                if !self.group_memo.contains_key(id.name.as_str()) {
                    enter(self, &id.name, id.span, &mut stack, &mut on_path);
                }
                continue;
            }
            stack.pop();
            on_path.remove(n);
            let decl = self.scope.groups[n];
            let mut set: BTreeSet<u32> = BTreeSet::new();
            for m in &decl.members {
                match m {
                    SyscallRef::Syscall(id) => {
                        if let (true, Ok(i)) = (self.known_syscall(id), all_syscall_names().binary_search(&id.name.as_str())) {
                            set.insert(i as u32);
                        }
                    }
                    SyscallRef::Group(id) => {
                        if let Some(Some(sub)) = self.group_memo.get(id.name.as_str()) {
                            set.extend(sub.iter().copied());
                        }
                    }
                }
            }
            self.group_memo.insert(n, Some(set.into_iter().collect()));
        }
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

    /// An action evaluated on each architecture it applies to: its data may use constants
    /// whose values differ between architectures, and one rule has one action, so data that
    /// differs between them is an error.
    pub fn action_on(&mut self, a: &'u ast::Action, archs: &[Arch]) -> Option<Action> {
        let archs = if archs.is_empty() { &[Arch::X86_64][..] } else { archs };
        let mut values: Vec<(Arch, Action)> = Vec::new();
        for &arch in archs {
            values.push((arch, self.action(a, arch)?));
        }
        let first = values[0].1;
        if values.iter().any(|(_, v)| *v != first) {
            let per_arch: Vec<String> = values.iter().map(|(arch, v)| format!("{v} on {arch}")).collect();
            let span = a.data.as_ref().map_or(a.span, |e| e.span);
            self.diags.push(SemaError::ActionDiffersByArch { values: per_arch.join(", "), span: span.into() });
            return None;
        }
        Some(first)
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

/// The consts of the unit an expression names, with the span of each use, in source order.
fn const_refs<'u>(e: &'u ast::Expr, scope: &Scope<'u>, out: &mut Vec<(&'u str, Span)>) {
    match &e.kind {
        ExprKind::Number(_) => {}
        ExprKind::Name(id) => {
            if let Some((&name, _)) = scope.consts.get_key_value(id.name.as_str()) {
                out.push((name, id.span));
            }
        }
        ExprKind::Unary(_, x) => const_refs(x, scope, out),
        ExprKind::Binary(_, a, b) => {
            const_refs(a, scope, out);
            const_refs(b, scope, out);
        }
    }
}
