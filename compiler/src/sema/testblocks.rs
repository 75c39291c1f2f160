//! `test POLICY { ... }` blocks: checked against the names they use, and run on the reference
//! interpreter for every target (or the one `on ARCH` names). `scpc test` runs the same lines
//! on the compiled filters through a [`FilterJudge`] (the back end's, in
//! `crate::analysis::judge`: the checker itself knows nothing of BPF).

use std::collections::BTreeSet;

use scpc_lang::ast::{self, Expected, TestArg, TestItem};
use scpc_lang::source::Span;

use super::{Checked, Checker, SemaError};
use crate::abi::Arch;
use crate::eval::decide;
use crate::policy::{ret_name, Action, CondData, Policy};
use crate::suggest::did_you_mean;

/// How many test lines ran, and how many calls they made.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct TestOutcome {
    /// Lines × architectures checked.
    pub cases: usize,
    /// Of those, failed (each reported).
    pub failed: usize,
}

/// Compiled filters that answer test lines.
pub trait FilterJudge {
    /// The value the filter of `policy` for hosts of `arch` returns for the call `nr(args)`
    /// of `arch`, or `None` if there is no such filter or it does not run.
    fn ret(&self, policy: &str, arch: Arch, nr: u32, args: &[u64; 6]) -> Option<u32>;

    /// What the filters must return where a line expects `action` (an audit-only build logs
    /// what the policy denies): `action` itself unless the filters say otherwise.
    fn expected(&self, action: Action) -> Action {
        action
    }
}

/// What test lines are run on.
#[derive(Copy, Clone)]
pub enum Judge<'a> {
    /// The reference interpreter (`scpc check`).
    Reference,
    /// The compiled filters, by policy and target architecture (the artifact a host of that
    /// architecture loads), run by the BPF emulator (`scpc test`).
    Compiled(&'a dyn FilterJudge),
}

impl Judge<'_> {
    /// The return value for a call, or `None` if the policy has no compiled filter or it
    /// does not run.
    fn ret(self, policy: &Policy, arch: Arch, nr: u32, args: &[u64; 6]) -> Option<u32> {
        let audit_arch = arch.table().audit_arch;
        match self {
            Judge::Reference => Some(decide(policy, audit_arch, nr, args).action.ret_value()),
            Judge::Compiled(filters) => filters.ret(&policy.name, arch, nr, args),
        }
    }

    /// What the judged filters must return where a line expects `action`.
    fn expected(self, action: Action) -> Action {
        match self {
            Judge::Reference => action,
            Judge::Compiled(filters) => filters.expected(action),
        }
    }
}

impl<'u> Checker<'u, '_> {
    pub(super) fn check_test(&mut self, t: &'u ast::TestDecl, checked: &Checked, judge: Judge<'_>) -> TestOutcome {
        let Some(policy) = checked.policies.get(&t.policy.name) else {
            if !self.scope.policies.contains_key(t.policy.name.as_str()) {
                let help = did_you_mean(&t.policy.name, self.scope.policies.keys().copied(), "a test block names the policy it tests");
                self.diags.push(SemaError::UnknownPolicy { name: t.policy.name.clone(), span: t.policy.span.into(), help });
            }
            return TestOutcome::default();
        };
        let mut outcome = TestOutcome::default();
        for item in &t.items {
            let (cases, only): (&[ast::TestCase], Option<Arch>) = match item {
                TestItem::Case(c) => (std::slice::from_ref(c), None),
                TestItem::On { arch, cases, .. } => match Arch::from_name(&arch.name) {
                    Some(a) if policy.arch(a).is_some() => (cases, Some(a)),
                    // a target left out by `--target`: nothing of it is checked or built
                    Some(a) if self.declared_targets(&t.policy.name).contains(&a) => continue,
                    found => {
                        let targets: Vec<&str> = policy.targets.iter().map(|t| t.arch.name()).collect();
                        let help = format!("its targets are {}", targets.join(", "));
                        if found.is_some() {
                            self.diags.push(SemaError::TestArchNotTarget {
                                arch: arch.name.clone(),
                                policy: policy.name.clone(),
                                span: arch.span.into(),
                                help,
                            });
                        } else {
                            let names = Arch::ALL.map(Arch::name);
                            let help = did_you_mean(&arch.name, names, &help);
                            self.diags.push(SemaError::UnknownArch { name: arch.name.clone(), span: arch.span.into(), help });
                        }
                        continue;
                    }
                },
            };
            for case in cases {
                for target in policy.targets.iter().filter(|t| only.is_none_or(|a| a == t.arch)) {
                    outcome.cases += 1;
                    if !self.run_case(policy, target.arch, case, judge) {
                        outcome.failed += 1;
                    }
                }
            }
        }
        outcome
    }

    /// Runs one line on one architecture; false if it failed (reported).
    fn run_case(&mut self, policy: &Policy, arch: Arch, case: &'u ast::TestCase, judge: Judge<'_>) -> bool {
        if !self.known_syscall(&case.syscall) {
            return false;
        }
        let args = case.args.as_deref().unwrap_or(&[]);
        if args.len() > 6 {
            self.diags.push(SemaError::TestTooManyArgs { count: args.len(), span: case.span.into() });
            return false;
        }
        let table = arch.table();
        let sys = table.syscall(&case.syscall.name);
        let expected = match &case.expected {
            Expected::Unknown(_) => None,
            Expected::Action(a) => match self.action(a, arch) {
                Some(a) => Some(judge.expected(a)),
                None => return false,
            },
        };
        let Some(sys) = sys else {
            return expected.is_none()
                || self.fail(arch, &case.syscall.name, "unknown (no such syscall here)".into(), expected, case.span, String::new());
        };
        if expected.is_none() {
            return self.fail(arch, &case.syscall.name, format!("a real syscall (nr {})", sys.nr), None, case.span, String::new());
        }
        let mut base = [0u64; 6];
        let mut any = Vec::new();
        for (i, a) in args.iter().enumerate() {
            match a {
                TestArg::Value(e) => match self.eval(e, arch) {
                    Some(v) => base[i] = v,
                    None => return false,
                },
                TestArg::Any(_) => any.push(i),
            }
        }
        for args in variants(policy, arch, base, &any) {
            let d = decide(policy, table.audit_arch, sys.nr, &args);
            let ret = judge.ret(policy, arch, sys.nr, &args);
            if ret != expected.map(Action::ret_value) {
                let call = format!(
                    "{}({})",
                    sys.name,
                    args.iter().take(args_shown(case)).map(|v| format!("{v:#x}")).collect::<Vec<_>>().join(", ")
                );
                let (by, rule) = match d.rule {
                    Some(r) => {
                        (format!("decided by the rule of policy `{}` marked here", policy.rules[r].layer), Some(policy.rules[r].span))
                    }
                    None => ("decided by the policy's default (no rule matched)".to_string(), None),
                };
                let actual = ret.map_or("no decision (no compiled filter)".to_string(), ret_name);
                return self.fail_by(arch, &call, actual, expected, case.span, by, rule);
            }
        }
        true
    }

    fn fail(&mut self, arch: Arch, call: &str, actual: String, expected: Option<Action>, span: Span, help: String) -> bool {
        self.fail_by(arch, call, actual, expected, span, help, None)
    }

    /// Reports a failed line; `rule` is the rule that decided the call, if one did.
    #[allow(clippy::too_many_arguments)]
    fn fail_by(
        &mut self,
        arch: Arch,
        call: &str,
        actual: String,
        expected: Option<Action>,
        span: Span,
        help: String,
        rule: Option<Span>,
    ) -> bool {
        let call = call.to_string();
        let expected = expected.map_or("unknown".to_string(), |a| a.to_string());
        let help = if help.is_empty() { "fix the policy or the expectation".to_string() } else { help };
        let rule = rule.map(Into::into);
        self.diags.push(SemaError::TestFailed { arch: arch.to_string(), call, actual, expected, span: span.into(), rule, help });
        false
    }

    /// The targets a policy's chain declares (its own `target` statement, or the nearest
    /// parent's), whatever `--target` narrows; nothing is reported (the chain resolved).
    fn declared_targets(&self, name: &str) -> Vec<Arch> {
        let mut cur = self.scope.policies.get(name).copied();
        for _ in 0..super::MAX_EXTENDS_DEPTH {
            let Some(p) = cur else { break };
            for stmt in &p.stmts {
                if let ast::StmtKind::Target(archs) = &stmt.kind {
                    return archs.iter().filter_map(|a| Arch::from_name(&a.name)).collect();
                }
            }
            cur = p.extends.as_ref().and_then(|e| self.scope.policies.get(e.name.as_str()).copied());
        }
        Vec::new()
    }
}

fn args_shown(case: &ast::TestCase) -> usize {
    case.args.as_ref().map_or(0, Vec::len)
}

/// The calls a line with `*` arguments stands for: each `*` in turn takes 0, 1, the 32- and
/// 64-bit extremes, and every constant the policy compares that argument with, ±1; the other
/// arguments stay as written (or 0).
pub(super) fn variants(policy: &Policy, arch: Arch, base: [u64; 6], any: &[usize]) -> Vec<[u64; 6]> {
    let mut out = vec![base];
    let Some(target) = policy.arch(arch) else { return out };
    for &i in any {
        let mut values: BTreeSet<u64> = [0, 1, 0xffff_ffff, u64::MAX].into();
        for c in target.conds.values() {
            let (arg, vals): (u8, Vec<u64>) = match c {
                CondData::Cmp { arg, value, mask, .. } => (*arg, vec![*value, *mask]),
                CondData::In { arg, values, .. } => (*arg, values.clone()),
                _ => continue,
            };
            if arg as usize == i {
                for v in vals {
                    values.extend([v.wrapping_sub(1), v, v.wrapping_add(1)]);
                }
            }
        }
        for v in values {
            let mut args = base;
            args[i] = v;
            out.push(args);
        }
    }
    out
}
