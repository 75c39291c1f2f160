//! `scpc diff`: where two policies, two compiled filters, or one of each decide differently.
//!
//! Each side is asked about every syscall number of every architecture it covers (the table's
//! numbers, the gaps between them, the x32 range and the extremes), and, for calls whose
//! decision depends on arguments, about argument values on and around every constant either
//! side compares with. A policy answers through the reference interpreter, a filter through
//! the emulator; so a policy and its own compiled filter diff as equal.

use std::collections::{BTreeMap, BTreeSet};

use crate::abi::{Arch, X32_SYSCALL_BIT};
use crate::bpf::sim::{run, SeccompData};
use crate::bpf::Program;
use crate::eval::{decide, target_of};
use crate::policy::Policy;
use crate::verify::{arg_candidates, combine};

/// One side of a comparison.
#[derive(Clone, Debug)]
pub enum Side {
    /// A resolved policy.
    Policy(Policy),
    /// A compiled filter.
    Filter(Program),
}

/// Where the sides disagree about one syscall number.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    /// The architecture of the calls.
    pub arch: Arch,
    /// `seccomp_data.nr`.
    pub nr: u32,
    /// The syscall's name, if the table has the number.
    pub name: Option<&'static str>,
    /// Whether every call that was tried changed (else the change depends on arguments).
    pub whatever_the_arguments: bool,
    /// Calls tried, and up to three examples: (arguments, old return value, new return value).
    pub tried: usize,
    /// Examples of changed calls.
    pub examples: Vec<([u64; 6], u32, u32)>,
}

/// The outcome of a comparison.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// Architectures compared.
    pub archs: Vec<Arch>,
    /// Architectures only one side covers (not compared): (arch, "old" or "new").
    pub uncovered: Vec<(Arch, &'static str)>,
    /// Every syscall number whose decision changes, by architecture and number.
    pub changes: Vec<Change>,
    /// Calls compared.
    pub calls: usize,
}

impl Side {
    /// The architectures whose calls this side decides by its own rules or code (rather than
    /// by not knowing the architecture).
    pub fn covers(&self) -> BTreeSet<Arch> {
        match self {
            Side::Policy(p) => {
                let audits: BTreeSet<u32> = p.targets.iter().map(|t| t.arch.table().audit_arch).collect();
                Arch::ALL.into_iter().filter(|a| audits.contains(&a.table().audit_arch)).collect()
            }
            Side::Filter(prog) => {
                let ks: BTreeSet<u32> = prog.insns.iter().filter(|i| i.code & 0x07 == 0x05).map(|i| i.k).collect();
                Arch::ALL.into_iter().filter(|a| ks.contains(&a.table().audit_arch)).collect()
            }
        }
    }

    /// The return value for one call (a filter that does not run answers kill_process, as
    /// the kernel would refuse it).
    pub fn decide(&self, arch: Arch, nr: u32, args: &[u64; 6]) -> u32 {
        let audit = arch.table().audit_arch;
        match self {
            Side::Policy(p) => decide(p, audit, nr, args).action.ret_value(),
            Side::Filter(prog) => {
                let data = SeccompData { nr, arch: audit, instruction_pointer: 0, args: *args };
                run(prog, &data).map_or(0x8000_0000, |o| o.ret)
            }
        }
    }

    /// Whether the decision for `nr` may depend on arguments, and values worth trying.
    fn candidates(&self, arch: Arch, nr: u32) -> Option<[BTreeSet<u64>; 6]> {
        match self {
            Side::Policy(p) => {
                let target = target_of(p, arch.table().audit_arch, nr)?;
                let conditional = target.syscalls.get(&nr).is_some_and(|e| e.iter().any(|e| e.cond.is_some()));
                conditional.then(|| arg_candidates(target, nr))
            }
            Side::Filter(prog) => {
                let data = SeccompData { nr, arch: arch.table().audit_arch, instruction_pointer: 0, args: [0; 6] };
                run(prog, &data).ok().filter(|o| o.read_args).map(|_| filter_candidates(prog))
            }
        }
    }
}

/// Per argument, values on and around every constant a filter compares argument words with:
/// each high-word candidate paired with each low-word candidate.
fn filter_candidates(prog: &Program) -> [BTreeSet<u64>; 6] {
    let mut words: BTreeMap<u32, BTreeSet<u32>> = BTreeMap::new();
    let mut loaded: Option<u32> = None;
    for i in &prog.insns {
        match i.code {
            0x20 => loaded = Some(i.k), // ld [k]
            0x54 | 0x15 | 0x25 | 0x35 | 0x45 => {
                // and #k; jeq, jgt, jge, jset #k
                if let Some(w) = loaded {
                    words.entry(w).or_default().insert(i.k);
                }
            }
            0x00 | 0x60 | 0x87 => loaded = None, // ld #k, ld M[k], txa
            _ => {}
        }
    }
    let around = |ks: Option<&BTreeSet<u32>>| -> BTreeSet<u32> {
        let mut out: BTreeSet<u32> = [0, u32::MAX, 0x8000_0000].into();
        for &k in ks.into_iter().flatten() {
            out.extend([k.wrapping_sub(1), k, k.wrapping_add(1), !k]);
        }
        out
    };
    let mut per_arg: [BTreeSet<u64>; 6] = Default::default();
    for (i, set) in per_arg.iter_mut().enumerate() {
        let (lo_off, hi_off) = (16 + 8 * i as u32, 20 + 8 * i as u32);
        if !words.contains_key(&lo_off) && !words.contains_key(&hi_off) {
            continue;
        }
        let (lo, hi) = (around(words.get(&lo_off)), around(words.get(&hi_off)));
        for &h in &hi {
            for &l in &lo {
                set.insert((h as u64) << 32 | l as u64);
            }
        }
    }
    per_arg
}

/// The numbers asked about for `arch`: everything up to past the table's end, and extremes.
fn numbers(arch: Arch) -> Vec<u32> {
    let table = arch.table();
    let base = table.nr_offset;
    let top = table.syscalls.iter().map(|s| s.nr - base).max().unwrap_or(0) + 64;
    let mut out: BTreeSet<u32> = (0..=top).map(|n| base | n).collect();
    let extremes = [0x3fff_ffff, 0x7fff_ffff, 0x8000_0000, 0xbfff_ffff, 0xffff_fffe, u32::MAX];
    out.extend(extremes.iter().map(|e| if arch == Arch::X32 { e | X32_SYSCALL_BIT } else { e & !X32_SYSCALL_BIT }));
    if arch != Arch::X86_64 && arch != Arch::X32 {
        out.extend(extremes);
    }
    out.into_iter().collect()
}

/// Compares two sides on every architecture both cover (for two policies: either covers).
pub fn diff(old: &Side, new: &Side) -> Report {
    let (a, b) = (old.covers(), new.covers());
    let any_filter = matches!(old, Side::Filter(_)) || matches!(new, Side::Filter(_));
    let archs: BTreeSet<Arch> = if any_filter { a.intersection(&b).copied().collect() } else { a.union(&b).copied().collect() };
    let mut report = Report { archs: archs.iter().copied().collect(), ..Report::default() };
    for arch in Arch::ALL {
        if !archs.contains(&arch) {
            if a.contains(&arch) {
                report.uncovered.push((arch, "old"));
            } else if b.contains(&arch) {
                report.uncovered.push((arch, "new"));
            }
        }
    }
    for &arch in &archs {
        for nr in numbers(arch) {
            let mut vectors = vec![[0u64; 6]];
            let (ca, cb) = (old.candidates(arch, nr), new.candidates(arch, nr));
            if ca.is_some() || cb.is_some() {
                let mut per_arg: [BTreeSet<u64>; 6] = Default::default();
                for c in [ca, cb].into_iter().flatten() {
                    for (i, s) in c.into_iter().enumerate() {
                        per_arg[i].extend(s);
                    }
                }
                vectors.extend(combine(&per_arg));
            }
            let mut change = Change {
                arch,
                nr,
                name: arch.table().by_nr(nr).map(|s| s.name),
                whatever_the_arguments: true,
                tried: vectors.len(),
                examples: Vec::new(),
            };
            let mut changed = 0;
            for args in &vectors {
                let (x, y) = (old.decide(arch, nr, args), new.decide(arch, nr, args));
                if x != y {
                    changed += 1;
                    change.examples.push((*args, x, y));
                }
            }
            report.calls += vectors.len();
            // the plainest examples first
            change.examples.sort_by_key(|(args, _, _)| {
                (args.iter().filter(|v| **v != 0).count(), args.iter().map(|v| v.count_ones()).sum::<u32>(), *args)
            });
            change.examples.dedup();
            change.examples.truncate(3);
            if changed > 0 {
                change.whatever_the_arguments = changed == vectors.len();
                report.changes.push(change);
            }
        }
    }
    report
}
