//! Translation validation: the compiled filter must decide exactly as the reference
//! interpreter ([`crate::eval::decide`]), and calls the policy allows whatever their
//! arguments must reach `allow` without reading arguments, so that the kernel's action cache
//! can absorb them. A mismatch is a compiler bug.
//!
//! Two passes. The sampler ([`sample`]) runs the filter in the BPF emulator
//! ([`crate::bpf::sim`]) on every architecture, every syscall number of the tables and the
//! numbers around them, x32 and foreign-architecture calls, and the boundary values of every
//! argument comparison (v-1, v, v+1, mask bits set and clear, upper halves set and clear; for
//! a syscall with so many rules that this would be slow, an even spread of them): it
//! finds most bugs in milliseconds with a plain counterexample, but it is not complete (a
//! region only a conjunction over several arguments reaches can escape it). Then the decision
//! procedure ([`crate::prove`]) compares the two on **every** input: only its "equal" makes a
//! filter *proven*. If it runs out of its node budget the filter is only *validated by
//! sampling*, and [`Validation::proven`] says so.

// A mismatch carries the whole failing call; it ends the build, so its size costs nothing.
#![allow(clippy::result_large_err)]

use std::collections::BTreeSet;

use crate::abi::{Arch, X32_SYSCALL_BIT};
use crate::bpf::sim::{run, SeccompData, SimError};
use crate::bpf::Program;
use crate::eval::decide;
use crate::policy::{Action, ArchPolicy, CondData, Policy};
use crate::prove::{prove, Proof};

/// A difference between the filter and the source.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum VerifyError {
    /// The filter decides a call differently from the policy.
    #[error("compiler bug: policy `{policy}` on arch {arch:#x}, nr {nr:#x}, args {args:x?}{}: the filter returns {got}, the policy says {expected}", ip_text(*instruction_pointer))]
    #[diagnostic(code(scpc::verify::mismatch), help("no artifact was written; please report this with the policy"))]
    Mismatch {
        /// The policy.
        policy: String,
        /// seccomp_data.arch.
        arch: u32,
        /// seccomp_data.nr.
        nr: u32,
        /// The arguments.
        args: [u64; 6],
        /// The instruction pointer (policies never read it; 0 when it does not matter).
        instruction_pointer: u64,
        /// What the filter returned.
        got: String,
        /// What the policy decides.
        expected: String,
    },
    /// The filter does not run (what the kernel would refuse).
    #[error("compiler bug: the filter of policy `{policy}` does not run: {error:?}")]
    #[diagnostic(code(scpc::verify::invalid), help("no artifact was written; please report this with the policy"))]
    Invalid {
        /// The policy.
        policy: String,
        /// Why.
        error: SimError,
    },
    /// An always-allowed syscall whose path reads arguments (the kernel could not cache it).
    #[error("compiler bug: `{syscall}` on {arch} is always allowed, but the filter reads its arguments")]
    #[diagnostic(code(scpc::verify::not_cacheable), help("no artifact was written; please report this with the policy"))]
    NotCacheable {
        /// The syscall.
        syscall: String,
        /// The architecture.
        arch: Arch,
    },
}

fn ip_text(ip: u64) -> String {
    if ip == 0 {
        String::new()
    } else {
        format!(", instruction pointer {ip:#x}")
    }
}

/// What validation checked.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Validation {
    /// Calls run on both judges by the sampler.
    pub cases: usize,
    /// Whether the decision procedure proved the filter equal to the policy on every input
    /// (false: it ran out of budget, and only the sampler vouches for the filter).
    pub proven: bool,
}

/// Checks `program` against `policy`: the sampler, then the proof (see the module docs).
pub fn validate(policy: &Policy, program: &Program) -> Result<Validation, VerifyError> {
    validate_within(policy, program, crate::prove::DEFAULT_BUDGET)
}

/// [`validate`] with a node budget for the proof.
pub fn validate_within(policy: &Policy, program: &Program, budget: usize) -> Result<Validation, VerifyError> {
    let mut v = sample(policy, program)?;
    let name = || policy.name.clone();
    match prove(policy, program, budget) {
        Proof::Proven => v.proven = true,
        Proof::OverBudget => v.proven = false,
        Proof::Invalid(error) => return Err(VerifyError::Invalid { policy: name(), error }),
        Proof::Mismatch(data, got, want) => {
            return Err(VerifyError::Mismatch {
                policy: name(),
                arch: data.arch,
                nr: data.nr,
                args: data.args,
                instruction_pointer: data.instruction_pointer,
                got: crate::bpf::disasm::ret_name(got),
                expected: crate::bpf::disasm::ret_name(want),
            })
        }
        Proof::NotCacheable(audit, nr) => {
            let owner = crate::eval::target_of(policy, audit, nr);
            let arch = owner.map_or(policy.targets[0].arch, |t| t.arch);
            let syscall = arch.table().by_nr(nr).map_or(format!("{nr}"), |s| s.name.to_string());
            return Err(VerifyError::NotCacheable { syscall, arch });
        }
    }
    Ok(v)
}

/// The sampler alone: `program` against `policy` on the calls the module docs list. A
/// quick first pass, not a proof.
pub fn sample(policy: &Policy, program: &Program) -> Result<Validation, VerifyError> {
    let mut v = Validation::default();
    let check = |arch: u32, nr: u32, args: [u64; 6], v: &mut Validation| -> Result<crate::bpf::sim::Outcome, VerifyError> {
        v.cases += 1;
        let instruction_pointer = 0x7fff_1234_5678;
        let data = SeccompData { nr, arch, instruction_pointer, args };
        let out = run(program, &data).map_err(|error| VerifyError::Invalid { policy: policy.name.clone(), error })?;
        let expected = decide(policy, arch, nr, &args).action;
        if out.ret != expected.ret_value() {
            return Err(VerifyError::Mismatch {
                policy: policy.name.clone(),
                arch,
                nr,
                args,
                instruction_pointer,
                got: crate::bpf::disasm::ret_name(out.ret),
                expected: expected.to_string(),
            });
        }
        Ok(out)
    };
    let targeted: BTreeSet<u32> = policy.targets.iter().map(|t| t.arch.table().audit_arch).collect();
    for foreign in Arch::ALL.iter().map(|a| a.table().audit_arch).chain([0, 0x1234_5678, u32::MAX]).filter(|a| !targeted.contains(a)) {
        for nr in [0, 1, 59, 257, X32_SYSCALL_BIT, u32::MAX] {
            check(foreign, nr, [0; 6], &mut v)?;
        }
    }
    for target in &policy.targets {
        let table = target.arch.table();
        for nr in numbers(target) {
            let audit = table.audit_arch;
            let out = check(audit, nr, [0; 6], &mut v)?;
            // the number may belong to another target of the same AUDIT_ARCH (x32 on x86_64)
            let owner = crate::eval::target_of(policy, audit, nr);
            if owner.is_some_and(|t| always_allowed(policy, t, nr)) && out.read_args {
                let syscall = table.by_nr(nr).map_or(format!("{nr}"), |s| s.name.to_string());
                return Err(VerifyError::NotCacheable { syscall, arch: owner.map_or(target.arch, |t| t.arch) });
            }
            let rules = target.syscalls.get(&nr).map_or(0, Vec::len);
            if target.syscalls.get(&nr).is_some_and(|e| e.iter().any(|e| e.cond.is_some())) {
                // each call costs the interpreter a pass over the rules: past SAMPLER_WORK,
                // an even spread of the boundary vectors (the proof covers every input)
                let vectors = spread(arg_vectors(target, nr), (SAMPLER_WORK / rules).max(SAMPLER_MIN));
                for args in vectors {
                    check(audit, nr, args, &mut v)?;
                }
            }
        }
    }
    Ok(v)
}

/// About how many rule evaluations the sampler spends on one syscall's boundary vectors.
const SAMPLER_WORK: usize = 1 << 20;
/// The boundary vectors the sampler runs at least, per syscall.
const SAMPLER_MIN: usize = 256;

/// At most `max` of `items`, evenly spread (all of them when there are no more).
fn spread<T: Copy>(items: Vec<T>, max: usize) -> Vec<T> {
    if items.len() <= max {
        return items;
    }
    (0..max).map(|i| items[i * items.len() / max]).collect()
}

/// Whether the policy allows `nr` whatever its arguments (no argument-dependent rule first).
fn always_allowed(policy: &Policy, target: &ArchPolicy, nr: u32) -> bool {
    match target.syscalls.get(&nr).and_then(|e| e.first()) {
        Some(first) => first.cond.is_none() && policy.rules[first.rule].action == Action::Allow,
        None => policy.default == Action::Allow && policy.newer.is_none_or(|n| n == Action::Allow),
    }
}

/// Every number of the table, its neighbours, the numbers rules name, x32 variants and the
/// extremes.
fn numbers(target: &ArchPolicy) -> BTreeSet<u32> {
    let mut out = BTreeSet::new();
    let table = target.arch.table();
    for nr in table.syscalls.iter().map(|s| s.nr).chain(target.syscalls.keys().copied()) {
        for n in [nr.wrapping_sub(1), nr, nr.wrapping_add(1), nr ^ X32_SYSCALL_BIT] {
            out.insert(n);
        }
    }
    let base = table.nr_offset;
    out.extend([0, base, base | 0x3fff_ffff, 0x3fff_ffff, X32_SYSCALL_BIT, 0x8000_0000, 0xc000_0000, u32::MAX, u32::MAX - 1]);
    out
}

/// Argument vectors around every comparison the rules of `nr` make.
fn arg_vectors(target: &ArchPolicy, nr: u32) -> Vec<[u64; 6]> {
    combine(&arg_candidates(target, nr))
}

/// Per argument, values on and around every comparison the rules of `nr` make.
pub(crate) fn arg_candidates(target: &ArchPolicy, nr: u32) -> [BTreeSet<u64>; 6] {
    let mut per_arg: [BTreeSet<u64>; 6] = Default::default();
    let mut stack: Vec<_> = target.syscalls.get(&nr).map_or(&[][..], |v| v.as_slice()).iter().filter_map(|e| e.cond).collect();
    while let Some(c) = stack.pop() {
        let (arg, mask, values): (u8, u64, Vec<u64>) = match &target.conds[c] {
            CondData::And(a, b) | CondData::Or(a, b) => {
                stack.extend([*a, *b]);
                continue;
            }
            CondData::Not(a) => {
                stack.push(*a);
                continue;
            }
            CondData::Cmp { arg, mask, value, .. } => (*arg, *mask, vec![*value]),
            CondData::In { arg, mask, values, .. } => (*arg, *mask, values.clone()),
        };
        for v in values {
            for base in [v.wrapping_sub(1), v, v.wrapping_add(1), v | !mask, v & mask, mask, !mask, 0, u64::MAX] {
                for variant in [base, base & 0xffff_ffff, base | 0xffff_ffff_0000_0000, base ^ (1 << 32), base ^ 0x8000_0000] {
                    per_arg[arg as usize].insert(variant);
                }
            }
        }
    }
    per_arg
}

/// Argument vectors from per-argument candidates: each argument alone, then all of them
/// stepping through their candidates together (for `&&` and `||`).
pub(crate) fn combine(per_arg: &[BTreeSet<u64>; 6]) -> Vec<[u64; 6]> {
    let lists: Vec<Vec<u64>> = per_arg.iter().map(|s| s.iter().copied().collect()).collect();
    let mut out = Vec::new();
    for (i, list) in lists.iter().enumerate() {
        for &v in list {
            let mut a = [0u64; 6];
            a[i] = v;
            out.push(a);
        }
    }
    // every argument at once, stepping through the candidates together, for && and ||
    let longest = lists.iter().map(Vec::len).max().unwrap_or(0);
    for j in 0..longest {
        let mut a = [0u64; 6];
        for (i, list) in lists.iter().enumerate() {
            if !list.is_empty() {
                a[i] = list[j % list.len()];
            }
        }
        out.push(a);
        for (i, list) in lists.iter().enumerate() {
            if !list.is_empty() {
                a[i] = list[(j * 7 + i * 3) % list.len()];
            }
        }
        out.push(a);
    }
    out
}

/// The calls translation validation makes with `seccomp_data.arch == audit_arch`, as
/// `(nr, args)`: for a target of that architecture, every number of [`validate`]'s sweep with
/// zero arguments and, for the syscalls whose rules compare arguments, the boundary argument
/// vectors; for an architecture the policy does not target, the few numbers it checks badarch
/// with. For judging a filter on a real kernel of that architecture (the test bed's judge).
pub fn boundary_calls(policy: &Policy, audit_arch: u32) -> Vec<(u32, [u64; 6])> {
    let mut out = Vec::new();
    let mut seen = BTreeSet::new();
    let mut push = |nr: u32, args: [u64; 6], out: &mut Vec<(u32, [u64; 6])>| {
        if seen.insert((nr, args)) {
            out.push((nr, args));
        }
    };
    let targets: Vec<&ArchPolicy> = policy.targets.iter().filter(|t| t.arch.table().audit_arch == audit_arch).collect();
    if targets.is_empty() {
        for nr in [0, 1, 59, 257, X32_SYSCALL_BIT, u32::MAX] {
            push(nr, [0; 6], &mut out);
        }
    }
    for target in targets {
        for nr in numbers(target) {
            push(nr, [0; 6], &mut out);
            if target.syscalls.get(&nr).is_some_and(|e| e.iter().any(|e| e.cond.is_some())) {
                for args in arg_vectors(target, nr) {
                    push(nr, args, &mut out);
                }
            }
        }
    }
    out
}
