//! One policy, resolved for each target: the chain's settings, then every rule of the chain
//! (own first, then the parent's...) typed for each syscall on each architecture.

use std::collections::HashMap;

use cranelift_entity::PrimaryMap;
use scpc_lang::ast::{self, CmpOp, CondKind, StmtKind, SyscallRef};
use scpc_lang::source::Span;

use super::lints::{Combinations, Shadowing};
use super::{Checker, Options, SemaError, Settings, DEFAULT_KERNEL};
use crate::abi::{is_register_name, Arch, KernelVersion, Param, Since, Syscall, Width};
use crate::policy::{Action, ArchPolicy, CondData, CondId, Entry, Policy, RuleData, RuleId};

/// A rule of the chain with where it sits.
pub(super) struct ChainRule<'u> {
    pub id: RuleId,
    pub rule: &'u ast::Rule,
    /// 0 for the policy's own rules, 1 for its parent's, ...
    pub depth: usize,
    pub span: Span,
}

impl<'u> Checker<'u, '_> {
    /// Resolves and checks one policy; `None` when it cannot be resolved at all (reported).
    pub fn policy(&mut self, name: &str, options: &Options) -> Option<Policy> {
        let decl = *self.scope.policies.get(name)?;
        let chain = self.chain(decl)?;
        let settings: Vec<Settings<'u>> = chain.iter().map(|p| self.settings(p)).collect();
        let kernel = settings.iter().find_map(|s| s.kernel).map_or(DEFAULT_KERNEL, |k| k.0);
        if let Some((k, span)) = settings[0].kernel.filter(|(k, _)| *k < KernelVersion::new(3, 5)) {
            self.diags.push(SemaError::KernelTooOld { version: k.to_string(), span: span.into() });
        }
        let Some(mut targets) = settings.iter().find_map(|s| s.target.as_ref()).map(|t| t.0.clone()) else {
            self.diags.push(SemaError::NoTarget { name: name.to_string(), span: decl.name.span.into() });
            return None;
        };
        // action data is evaluated on every target of the policy, whatever `--target` narrows
        let all_targets = targets.clone();
        if !options.targets.is_empty() {
            targets.retain(|a| options.targets.contains(a));
        }
        let setting_action = |this: &mut Self, pick: fn(&Settings<'u>) -> Option<&'u ast::Action>| {
            let a = settings.iter().find_map(pick)?;
            let resolved = this.action_on(a, &all_targets)?;
            this.check_action_kernel(resolved, a.span, kernel);
            Some(resolved)
        };
        let default = setting_action(self, |s| s.default);
        // 0x80000000 means "kill the thread" before Linux 4.14, so the implicit badarch follows
        // the kernel: kill_process where the kernel has it, kill_thread before.
        let implicit_badarch = if kernel >= Action::KillProcess.min_kernel() { Action::KillProcess } else { Action::KillThread };
        let badarch = setting_action(self, |s| s.badarch).unwrap_or(implicit_badarch);
        let newer = setting_action(self, |s| s.newer);
        let Some(default) = default else {
            if !settings.iter().any(|s| s.default.is_some()) {
                self.diags.push(SemaError::NoDefault { name: name.to_string(), span: decl.name.span.into() });
            }
            return None;
        };

        // Every layer of the chain is checked here, not only the policy's own rules: a parent's
        // rule is part of this policy's filter, under this policy's kernel and targets.
        let mut rules = PrimaryMap::new();
        let mut chain_rules = Vec::new();
        for (depth, layer) in chain.iter().enumerate() {
            for stmt in &layer.stmts {
                let StmtKind::Rule(rule) = &stmt.kind else { continue };
                self.check_rule_archs(rule, &all_targets);
                let on: Vec<Arch> = if rule.archs.is_empty() {
                    all_targets.clone()
                } else {
                    all_targets.iter().copied().filter(|a| rule.archs.iter().any(|r| Arch::from_name(&r.name) == Some(*a))).collect()
                };
                let on = if on.is_empty() { all_targets.clone() } else { on };
                let action = match self.action_on(&rule.action, &on) {
                    Some(a) => {
                        self.check_action_kernel(a, rule.action.span, kernel);
                        a
                    }
                    None => Action::KillProcess,
                };
                let id =
                    rules.push(RuleData { action, layer: layer.name.name.clone(), is_final: rule.final_span.is_some(), span: stmt.span });
                chain_rules.push(ChainRule { id, rule, depth, span: stmt.span });
            }
        }
        let mut shadowing = Shadowing::default();
        let mut combinations = Combinations::default();
        let mut arch_policies = Vec::new();
        for &arch in &targets {
            let ap = self.arch_policy(arch, &chain_rules, &rules, kernel, &mut shadowing);
            // (`chain_rules` are in the order `rules` numbers them)
            combinations.record(&ap, |id| chain_rules[cranelift_entity::EntityRef::index(id)].rule.cond.as_ref());
            arch_policies.push(ap);
        }
        let policy = Policy { name: name.to_string(), kernel, default, newer, badarch, rules, targets: arch_policies };
        shadowing.report(&policy.rules, self.diags);
        combinations.report(self.diags);
        self.lint_own_rules(&policy, &chain_rules);
        self.lint_multiplexers(&policy, &chain_rules);
        self.lint_unfiltered(&policy, &chain_rules);
        self.check_finals(&policy, &chain_rules);
        Some(policy)
    }

    /// `on ARCH, ...`: known architectures, at least one of them a target.
    fn check_rule_archs(&mut self, rule: &ast::Rule, targets: &[Arch]) {
        if rule.archs.is_empty() {
            return;
        }
        let archs = self.archs(&rule.archs);
        if archs.len() == rule.archs.len() && !archs.iter().any(|a| targets.contains(a)) {
            let span = rule.archs[0].span.to(rule.archs[rule.archs.len() - 1].span);
            self.diags.push(SemaError::RuleArchNotTarget {
                span: span.into(),
                help: format!("the policy's targets are {}", targets.iter().map(|a| a.name()).collect::<Vec<_>>().join(", ")),
            });
        }
    }

    fn check_action_kernel(&mut self, action: Action, span: Span, kernel: KernelVersion) {
        let needs = action.min_kernel();
        if needs > kernel && kernel >= KernelVersion::new(3, 5) {
            let help = match action {
                Action::KillProcess => format!("raise `kernel >=` to {needs}, or use `kill_thread`, which kernels from 3.5 know"),
                Action::Log => format!("raise `kernel >=` to {needs}, or use `trace(N)` or `allow`"),
                _ => format!("raise `kernel >=` to {needs}"),
            };
            self.diags.push(SemaError::ActionTooNew {
                action: action.to_string(),
                needs: needs.to_string(),
                kernel: kernel.to_string(),
                span: span.into(),
                help,
            });
        }
    }

    fn arch_policy(
        &mut self,
        arch: Arch,
        chain_rules: &[ChainRule<'u>],
        rules: &PrimaryMap<RuleId, RuleData>,
        kernel: KernelVersion,
        shadowing: &mut Shadowing,
    ) -> ArchPolicy {
        let table = arch.table();
        let mut ap = ArchPolicy { arch, syscalls: Default::default(), conds: PrimaryMap::new() };
        // Own rules only: the first unconditional own rule of each syscall, for shadowing.
        let mut always: HashMap<u32, RuleId> = HashMap::new();
        for cr in chain_rules {
            if !cr.rule.archs.is_empty() && !cr.rule.archs.iter().any(|a| Arch::from_name(&a.name) == Some(arch)) {
                continue;
            }
            let expanded = self.expand(&cr.rule.syscalls);
            let names: Vec<&str> = expanded.iter().map(|e| e.0).collect();
            for &(name, r, direct) in &expanded {
                let Some(sys) = table.syscall(name) else {
                    if direct && cr.depth == 0 {
                        let help = missing_help(name, arch);
                        self.diags.push(SemaError::MissingOnTarget {
                            name: name.to_string(),
                            arch: arch.to_string(),
                            span: r.span().into(),
                            help,
                        });
                    }
                    continue;
                };
                if cr.depth == 0 && direct {
                    self.check_syscall_kernel(sys, arch, kernel, rules[cr.id].action, r.span());
                    shadowing.record(cr.id, r.span(), name, always.get(&sys.nr).copied());
                }
                let cond = match &cr.rule.cond {
                    Some(c) => match self.lower(c, sys, arch, &names, &mut ap.conds) {
                        Some(id) => Some(id),
                        None => continue,
                    },
                    None => None,
                };
                if cr.depth == 0 && cond.is_none() {
                    always.entry(sys.nr).or_insert(cr.id);
                }
                let entries = ap.syscalls.entry(sys.nr).or_default();
                if !entries.iter().any(|e| e.rule == cr.id) {
                    entries.push(Entry { rule: cr.id, cond });
                }
            }
        }
        ap
    }

    /// Warns when a rule lets through a syscall that the policy's oldest kernel lacks (denying
    /// one is harmless, so only `allow` and `log` are checked).
    fn check_syscall_kernel(&mut self, sys: &Syscall, arch: Arch, kernel: KernelVersion, action: Action, span: Span) {
        if sys.since.present_in(kernel) || !action.lets_through() {
            return;
        }
        let (since, help) = match sys.since {
            Since::Never => (
                "no kernel".to_string(),
                format!("`{}` is a reserved number without an implementation on {arch}: the kernel answers ENOSYS", sys.name),
            ),
            other => (
                other.to_string(),
                format!("kernels older than {other} have no `{}`: the rule only matters on newer ones; raise `kernel >=`, or answer it with errno(ENOSYS) so the C library falls back", sys.name),
            ),
        };
        self.diags.push(SemaError::SyscallTooNew {
            name: sys.name.to_string(),
            since,
            arch: arch.to_string(),
            kernel: kernel.to_string(),
            span: span.into(),
            help,
        });
    }

    /// Types a condition for one syscall on one architecture.
    fn lower(
        &mut self,
        c: &'u ast::Cond,
        sys: &'static Syscall,
        arch: Arch,
        rule_syscalls: &[&str],
        conds: &mut PrimaryMap<CondId, CondData>,
    ) -> Option<CondId> {
        let data = match &c.kind {
            CondKind::And(a, b) | CondKind::Or(a, b) => {
                let (a, b) = (self.lower(a, sys, arch, rule_syscalls, conds), self.lower(b, sys, arch, rule_syscalls, conds));
                let (a, b) = (a?, b?);
                if matches!(c.kind, CondKind::And(..)) {
                    CondData::And(a, b)
                } else {
                    CondData::Or(a, b)
                }
            }
            CondKind::Not(a) => CondData::Not(self.lower(a, sys, arch, rule_syscalls, conds)?),
            CondKind::Compare { arg, mask, op, value } => {
                let Operand { reg, reg_hi, param, width } = self.arg(arg, sys, arch, rule_syscalls)?;
                let mask = self.mask(mask.as_ref(), width, arg, sys, arch)?;
                let value = self.operand(value, width, arg, param, sys, arch)?;
                self.lint_constant(c.span, arg, width, fixed_outcome(mask & width.mask(), *op, value));
                match reg_hi {
                    Some(hi) => return Some(pair_compare(conds, reg, hi, mask, *op, value)),
                    None => CondData::Cmp { arg: reg, width, mask, op: *op, value },
                }
            }
            CondKind::In { arg, mask, negated, set } => {
                let Operand { reg, reg_hi, param, width } = self.arg(arg, sys, arch, rule_syscalls)?;
                let mask = self.mask(mask.as_ref(), width, arg, sys, arch)?;
                let mut values = Vec::new();
                for e in set {
                    values.push(self.operand(e, width, arg, param, sys, arch));
                }
                let mut values: Vec<u64> = values.into_iter().collect::<Option<_>>()?;
                values.sort_unstable();
                values.dedup();
                let m = mask & width.mask();
                // the masked argument takes the 2^popcount(m) submasks of m: fixed when the set
                // holds none of them, or all (`flags & 1 in {0, 1}`)
                let members = values.iter().filter(|v| *v & !m == 0).count() as u128;
                let fixed = if members == 0 {
                    Some(*negated)
                } else if members == 1u128 << m.count_ones() {
                    Some(!*negated)
                } else {
                    None
                };
                self.lint_constant(c.span, arg, width, fixed);
                match reg_hi {
                    Some(hi) => {
                        let equal: Vec<CondId> = values.iter().map(|&v| pair_compare(conds, reg, hi, mask, CmpOp::Eq, v)).collect();
                        let any = balanced(conds, &equal, CondData::Or);
                        return Some(if *negated { conds.push(CondData::Not(any)) } else { any });
                    }
                    None => CondData::In { arg: reg, width, mask, negated: *negated, values },
                }
            }
        };
        Some(conds.push(data))
    }

    /// `& MASK`, checked against the argument's width as a comparison's value is: a mask with
    /// bits the kernel does not read would decide on bits it ignores (`~X` of a small X is a
    /// negative number, taken at the width).
    fn mask(&mut self, mask: Option<&'u ast::Expr>, width: Width, arg: &ast::Ident, sys: &Syscall, arch: Arch) -> Option<u64> {
        let Some(m) = mask else { return Some(width.mask()) };
        let v = self.eval(m, arch)?;
        if !fits(v, width) {
            let bits = width.bits();
            self.diags.push(SemaError::MaskTooWide {
                value: v,
                bits,
                arg: arg.name.clone(),
                syscall: sys.name.to_string(),
                arch: arch.to_string(),
                span: m.span.into(),
                help: format!(
                    "the kernel reads only the low {bits} bits of `{}`, so the bits of the mask above them can never be set: mask with {:#x} or less",
                    arg.name,
                    width.mask()
                ),
            });
            return None;
        }
        Some(v & width.mask())
    }

    /// Warns about a comparison whose outcome the argument's width fixes.
    fn lint_constant(&mut self, span: Span, arg: &ast::Ident, width: Width, fixed: Option<bool>) {
        let Some(holds) = fixed else { return };
        self.diags.push(SemaError::ConstantCondition {
            outcome: if holds { "true" } else { "false" },
            bits: width.bits(),
            arg: arg.name.clone(),
            span: span.into(),
        });
    }

    /// A comparison's right side, checked against the argument's width: a value that only
    /// differs in bits the kernel ignores would make the comparison meaningless. Negative
    /// values are taken at the argument's width (`AT_FDCWD` is 0xffffff9c for an `int`).
    fn operand(
        &mut self,
        e: &'u ast::Expr,
        width: Width,
        arg: &ast::Ident,
        param: Option<&Param>,
        sys: &Syscall,
        arch: Arch,
    ) -> Option<u64> {
        let v = self.eval(e, arch)?;
        let bits = width.bits();
        if !fits(v, width) {
            let ctype = param.map_or("a register", |p| p.ctype);
            let help = format!(
                "the kernel reads only the low {bits} bits of `{}` ({ctype}), so this comparison is decided by bits it ignores",
                arg.name
            );
            self.diags.push(SemaError::ValueTooWide {
                value: v,
                bits,
                arg: arg.name.clone(),
                syscall: sys.name.to_string(),
                arch: arch.to_string(),
                span: e.span.into(),
                help,
            });
            return None;
        }
        Some(v & width.mask())
    }

    /// An argument by name or `argN`: its register (two for a 64-bit value in a register pair
    /// on a 32-bit architecture), parameter and width on this architecture. `argN` always names
    /// register N, as in libseccomp, minijail, kafel and Docker: where the kernel calls another
    /// register's parameter `argN` (prctl's `arg2` is register 1) that gets a warning saying so.
    /// On arm, N may be half of a pair (then 32 bits of it) or the padding before one (a
    /// warning, as for a register past the parameters). Other names are the kernel's, or the
    /// manual pages' ([`crate::abi::param_aliases`]).
    fn arg(&mut self, arg: &ast::Ident, sys: &'static Syscall, arch: Arch, rule_syscalls: &[&str]) -> Option<Operand> {
        let params = sys.params;
        let default_width = if arch.is_32bit() { Width::W32 } else { Width::W64 };
        let operand = if is_register_name(&arg.name) {
            let Some(n) = arg.name[3..].parse::<u8>().ok().filter(|n| *n <= 5) else {
                self.diags.push(SemaError::ArgIndex { arg: arg.name.clone(), span: arg.span.into() });
                return None;
            };
            let holder = params.iter().find(|p| p.reg == n || p.reg_hi == Some(n));
            if let Some(named) = params.iter().find(|p| p.name == arg.name && (p.reg != n || p.reg_hi.is_some())) {
                self.lint_register_name(arg, n, holder, named, sys);
            }
            match holder {
                // one register of a pair: 32 bits of the value
                Some(p) if p.reg_hi.is_some() => Operand { reg: n, reg_hi: None, param: Some(p), width: Width::W32 },
                Some(p) => Operand { reg: n, reg_hi: None, param: Some(p), width: p.width },
                None => {
                    if !params.is_empty() {
                        let help = match params.iter().find(|p| p.reg_hi.is_some() && p.reg == n + 1) {
                            Some(pair) => format!(
                                "on {arch}, `{}` is the padding register before the pair that holds `{}` (a 64-bit value starts in an even register): compare `{}` itself; {}",
                                arg.name,
                                pair.name,
                                pair.name,
                                param_list(sys)
                            ),
                            None => param_list(sys),
                        };
                        self.diags.push(SemaError::ArgUnused {
                            arg: arg.name.clone(),
                            syscall: sys.name.to_string(),
                            count: params.len(),
                            span: arg.span.into(),
                            help,
                        });
                    }
                    Operand { reg: n, reg_hi: None, param: None, width: default_width }
                }
            }
        } else if let Some(p) = sys.param(&arg.name) {
            Operand { reg: p.reg, reg_hi: p.reg_hi, param: Some(p), width: p.width }
        } else {
            let others: Vec<&str> = rule_syscalls
                .iter()
                .copied()
                .filter(|n| *n != sys.name)
                .filter(|n| arch.table().syscall(n).is_some_and(|s| s.param(&arg.name).is_some()))
                .collect();
            let help = if others.is_empty() {
                let suggestion = crate::suggest::closest(&arg.name, params.iter().map(|p| p.name));
                let mut h = param_list(sys);
                if let Some(s) = suggestion {
                    h = format!("did you mean `{s}`? {h}");
                }
                h
            } else {
                format!(
                    "`{}` is a parameter of {} but not of `{}`: {}; split the rule, or use argN",
                    arg.name,
                    others.join(", "),
                    sys.name,
                    param_list(sys)
                )
            };
            self.diags.push(SemaError::UnknownArg {
                arg: arg.name.clone(),
                syscall: sys.name.to_string(),
                arch: arch.to_string(),
                span: arg.span.into(),
                help,
            });
            return None;
        };
        if let Some(p) = operand.param.filter(|p| p.pointer) {
            self.diags.push(SemaError::PointerCompare {
                arg: arg.name.clone(),
                syscall: sys.name.to_string(),
                ctype: p.ctype.to_string(),
                span: arg.span.into(),
            });
        }
        Some(operand)
    }
}

impl Checker<'_, '_> {
    /// Warns that `argN` reads register N while the kernel calls another register's parameter
    /// `argN` (prctl's parameters are `option, arg2, arg3, arg4, arg5`): a reader who knows the
    /// kernel's signature would take it for the wrong register.
    fn lint_register_name(&mut self, arg: &ast::Ident, n: u8, holder: Option<&Param>, named: &Param, sys: &Syscall) {
        let here = match holder {
            Some(p) if p.reg_hi.is_some() => format!("half of the kernel's `{}`", p.name),
            Some(p) => format!("the kernel's `{}`", p.name),
            None => "no parameter".to_string(),
        };
        let theirs = format!("arg{}", named.reg);
        self.diags.push(SemaError::RegisterName {
            arg: arg.name.clone(),
            syscall: sys.name.to_string(),
            reg: n,
            kernel_reg: named.reg,
            span: arg.span.into(),
            help: format!(
                "`{}` reads register {n}, which holds {here}; the kernel's own `{}` is in {theirs}: write `{theirs}` for it (`argN` always names register N, as in libseccomp, minijail and Docker), or acknowledge this with `# scpc: allow(register_name)`",
                arg.name, named.name
            ),
        });
    }
}

/// What a condition compares: one register, or a register pair holding a 64-bit value.
struct Operand {
    /// The register (the low half's, for a pair).
    reg: u8,
    /// The high half's register, for a pair.
    reg_hi: Option<u8>,
    /// The parameter, where the register holds one.
    param: Option<&'static Param>,
    /// The bits compared.
    width: Width,
}

/// `(pair & mask) OP value` for a 64-bit value split over two 32-bit registers, as
/// comparisons of the halves: equal when both halves are; ordered by the high half, then, when
/// the high halves are equal, by the low half.
fn pair_compare(conds: &mut PrimaryMap<CondId, CondData>, lo: u8, hi: u8, mask: u64, op: CmpOp, value: u64) -> CondId {
    let mut half = |reg: u8, shift: u32, op: CmpOp| {
        conds.push(CondData::Cmp {
            arg: reg,
            width: Width::W32,
            mask: (mask >> shift) & 0xffff_ffff,
            op,
            value: (value >> shift) & 0xffff_ffff,
        })
    };
    let hi_eq = half(hi, 32, CmpOp::Eq);
    let (strict, low_op) = match op {
        CmpOp::Eq | CmpOp::Ne => {
            let lo_eq = half(lo, 0, CmpOp::Eq);
            let both = conds.push(CondData::And(hi_eq, lo_eq));
            return if op == CmpOp::Eq { both } else { conds.push(CondData::Not(both)) };
        }
        CmpOp::Lt => (CmpOp::Lt, CmpOp::Lt),
        CmpOp::Le => (CmpOp::Lt, CmpOp::Le),
        CmpOp::Gt => (CmpOp::Gt, CmpOp::Gt),
        CmpOp::Ge => (CmpOp::Gt, CmpOp::Ge),
    };
    let hi_strict = half(hi, 32, strict);
    let lo_cmp = half(lo, 0, low_op);
    let tie = conds.push(CondData::And(hi_eq, lo_cmp));
    conds.push(CondData::Or(hi_strict, tie))
}

/// The conditions joined by `join` as a balanced tree, so that its depth grows with the
/// logarithm of their number (a set of a thousand values stays ten levels deep).
fn balanced(conds: &mut PrimaryMap<CondId, CondData>, items: &[CondId], join: fn(CondId, CondId) -> CondData) -> CondId {
    match items {
        [] => conds.push(CondData::In { arg: 0, width: Width::W32, mask: 0, negated: false, values: Vec::new() }),
        [one] => *one,
        _ => {
            let (a, b) = items.split_at(items.len() / 2);
            let (a, b) = (balanced(conds, a, join), balanced(conds, b, join));
            conds.push(join(a, b))
        }
    }
}

/// Whether a constant fits an argument's width: at most its bits, or a negative number whose
/// value the width can hold (`AT_FDCWD` for an `int`, `~O_CLOEXEC` as a mask).
fn fits(v: u64, width: Width) -> bool {
    let bits = width.bits();
    bits == 64 || v <= width.mask() || ((v as i64) < 0 && (v as i64) >= -(1i64 << (bits - 1)))
}

/// The outcome of `(arg & m) OP value` when it is the same for every value of the argument
/// (`m` already cut to the width); `None` when it depends on the argument.
fn fixed_outcome(m: u64, op: CmpOp, value: u64) -> Option<bool> {
    match op {
        CmpOp::Eq if value & !m != 0 => Some(false),
        CmpOp::Eq if m == 0 => Some(value == 0),
        CmpOp::Ne => fixed_outcome(m, CmpOp::Eq, value).map(|b| !b),
        CmpOp::Lt if value == 0 => Some(false),
        CmpOp::Lt if m < value => Some(true),
        CmpOp::Le if m <= value => Some(true),
        CmpOp::Gt if m <= value => Some(false),
        CmpOp::Ge if value == 0 => Some(true),
        CmpOp::Ge if m < value => Some(false),
        _ => None,
    }
}

/// "its parameters are openat(dfd, filename, flags, mode), or arg0..arg3", with the registers
/// of the parameters that are not at their position (a register pair on a 32-bit
/// architecture).
fn param_list(sys: &Syscall) -> String {
    if sys.params.is_empty() {
        return format!("`{}` takes no arguments (or its signature is unknown); registers are arg0..arg5", sys.name);
    }
    let names: Vec<&str> = sys.params.iter().map(|p| p.name).collect();
    let moved: Vec<String> = sys
        .params
        .iter()
        .enumerate()
        .filter(|(i, p)| p.reg as usize != *i || p.reg_hi.is_some() || (is_register_name(p.name) && p.name != format!("arg{}", p.reg)))
        .map(|(_, p)| match p.reg_hi {
            Some(hi) => format!("`{}` in arg{} (low half) and arg{hi} (high half)", p.name, p.reg),
            None => format!("`{}` in arg{}", p.name, p.reg),
        })
        .collect();
    let last = sys.params.iter().map(|p| p.reg_hi.unwrap_or(p.reg)).max().unwrap_or(0);
    let regs = if last == 0 { "or arg0".to_string() } else { format!("or arg0..arg{last}") };
    let moved = if moved.is_empty() { String::new() } else { format!(" ({})", moved.join(", ")) };
    format!("its parameters are {}({}){moved}, {regs}", sys.name, names.join(", "))
}

/// What to do about `name`, which `arch` lacks: the calls of its families that `arch` has
/// (`mmap` on arm: `mmap2`), and the family's group, which means the operation everywhere.
fn missing_help(name: &str, arch: Arch) -> String {
    let there = crate::abi::equivalents(name, arch);
    if there.is_empty() {
        return format!(
            "{arch} has no call that does what `{name}` does; name it only in a policy for the architectures that have it (or `on` them), or ignore this if that is intended"
        );
    }
    let listed = there.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ");
    let groups: Vec<String> = crate::abi::families_of(name).map(|f| format!("`@{}`", f.name)).collect();
    format!(
        "on {arch} the same operation is {listed}: name {} too, or write {} (include \"std/families.scp\"), which means it on every architecture",
        if there.len() == 1 { "it" } else { "them" },
        groups.join(" or ")
    )
}

/// Names a reference for messages.
pub(super) fn ref_name(r: &SyscallRef) -> String {
    match r {
        SyscallRef::Syscall(i) => i.name.clone(),
        SyscallRef::Group(i) => format!("@{}", i.name),
    }
}
