//! `scpc diff`: where two policies, two compiled filters, or one of each decide differently,
//! on **every** call of the architectures compared — not on samples.
//!
//! Both sides become decision diagrams ([`crate::prove`]): a policy through the reference
//! interpreter's meaning, a filter by symbolic execution. Their combination maps each input
//! to "the same" or to the pair (old decision, new decision); the report reads it off:
//! per architecture, the syscall numbers (named, or as ranges) whose decision changes, and
//! for each either "whatever the arguments" or the argument regions where it changes, in
//! readable conditions, plus one concrete call. Equal sides give an empty report, and that
//! is a proof, not a failure to find.

use std::collections::BTreeSet;

use serde::{Serialize, Serializer};

use crate::abi::{Arch, Width};
use crate::bpf::disasm::ret_name;
use crate::bpf::sim::{run, SeccompData, SimError};
use crate::bpf::Program;
use crate::eval::decide;
use crate::policy::Policy;
use crate::prove::dd::{Manager, NodeId, OverBudget, FALSE, TRUE};
use crate::prove::{filter_diagram, input_of, policy_diagram, word, ProveError, DEFAULT_BUDGET};

/// One side of a comparison.
#[derive(Clone, Debug)]
pub enum Side {
    /// A resolved policy.
    Policy(Policy),
    /// A compiled filter.
    Filter(Program),
}

fn arch_name<S: Serializer>(a: &Option<Arch>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(a.map_or("other", |a| a.name()))
}

fn arch_names<S: Serializer>(a: &[Arch], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(a.iter().map(|a| a.name()))
}

fn one_arch<S: Serializer>(a: &Arch, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(a.name())
}

/// A test of one argument: `(args[arg] & mask)` within `lo..=hi`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Condition {
    /// Argument index 0..=5 (6 is the instruction pointer).
    pub arg: u8,
    /// Its name in the syscall's signature (`arg2` when unknown).
    pub name: String,
    /// The bits tested.
    pub mask: u64,
    /// The smallest value of the masked bits.
    pub lo: u64,
    /// The largest.
    pub hi: u64,
    /// When the test is a small set rather than a range: its members (then `mask` is the
    /// argument's width).
    pub values: Vec<u64>,
    /// The same, readable: `family == 0x11`, `count >= 0x1000`, `flags & 0x3 == 0x1`.
    pub text: String,
}

/// Argument values where the decision changes: every condition holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Region {
    /// The conditions (none: every value of the arguments the other regions leave).
    pub conditions: Vec<Condition>,
    /// The old decision there.
    pub old: String,
    /// The new decision there.
    pub new: String,
}

/// One concrete call whose decision changes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Example {
    /// `seccomp_data.nr`.
    pub nr: u32,
    /// The arguments.
    pub args: [u64; 6],
    /// The old return value.
    pub old_ret: u32,
    /// The new one.
    pub new_ret: u32,
    /// The old decision.
    pub old: String,
    /// The new decision.
    pub new: String,
    /// The call, readable: `socket(family=0x11, type=3, protocol=0x300)`.
    pub call: String,
}

/// Where the sides decide differently: one architecture, a syscall or a range of numbers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Difference {
    /// The architecture (`None`, "other" in JSON: an AUDIT_ARCH value of none of scpc's
    /// architectures).
    #[serde(serialize_with = "arch_name")]
    pub arch: Option<Arch>,
    /// `seccomp_data.arch`.
    pub audit_arch: u32,
    /// The first syscall number.
    pub nr_lo: u32,
    /// The last syscall number.
    pub nr_hi: u32,
    /// The syscall's name, when the range is one number the table names.
    pub syscall: Option<&'static str>,
    /// Whether every call changes the same way whatever its arguments.
    pub whatever_the_arguments: bool,
    /// Where it changes, for argument-dependent changes (see `more_regions`).
    pub regions: Vec<Region>,
    /// Whether there are more regions than listed.
    pub more_regions: bool,
    /// A call that changes.
    pub example: Example,
}

/// An architecture only one side covers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NotCompared {
    /// The architecture.
    #[serde(serialize_with = "one_arch")]
    pub arch: Arch,
    /// "old" or "new".
    pub only_in: &'static str,
}

/// The outcome of a comparison: complete over every call of the compared architectures
/// and of AUDIT_ARCH values no architecture of scpc has.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Report {
    /// Architectures compared.
    #[serde(serialize_with = "arch_names")]
    pub archs: Vec<Arch>,
    /// Architectures only one side covers (not compared).
    pub not_compared: Vec<NotCompared>,
    /// Whether the sides decide every call alike.
    pub equal: bool,
    /// Every difference, by architecture and number.
    pub differences: Vec<Difference>,
}

/// Why two sides could not be compared.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DiffError {
    /// A filter the kernel would refuse.
    #[error("the {side} filter is not one the kernel would load: {error}")]
    Invalid {
        /// "old" or "new".
        side: &'static str,
        /// Why.
        error: SimError,
    },
    /// Too big to compare exactly within the node budget.
    #[error("the comparison needs more than {budget} decision-diagram nodes; no answer is given rather than a sampled one")]
    TooBig {
        /// The budget.
        budget: usize,
    },
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

    fn diagram(&self, m: &mut Manager, side: &'static str) -> Result<NodeId, DiffError> {
        let too_big = DiffError::TooBig { budget: DEFAULT_BUDGET };
        match self {
            Side::Policy(p) => policy_diagram(m, p).map_err(|_| too_big),
            Side::Filter(prog) => filter_diagram(m, prog).map_err(|e| match e {
                ProveError::Invalid(error) => DiffError::Invalid { side, error },
                ProveError::OverBudget => too_big,
            }),
        }
    }
}

/// The terminal of "decided alike".
const SAME: u64 = u64::MAX;
/// Most regions listed per difference.
const MAX_REGIONS: usize = 16;
/// Most number blocks read per architecture before the rest is summed up as ranges.
const MAX_BLOCKS: usize = 1 << 16;

/// Compares two sides on every call of every architecture both cover (for two policies:
/// either covers), and of AUDIT_ARCH values none of scpc's architectures has.
pub fn diff(old: &Side, new: &Side) -> Result<Report, DiffError> {
    let (a, b) = (old.covers(), new.covers());
    let any_filter = matches!(old, Side::Filter(_)) || matches!(new, Side::Filter(_));
    let archs: BTreeSet<Arch> = if any_filter { a.intersection(&b).copied().collect() } else { a.union(&b).copied().collect() };
    let mut report = Report { archs: archs.iter().copied().collect(), ..Report::default() };
    for arch in Arch::ALL {
        if !archs.contains(&arch) {
            if a.contains(&arch) {
                report.not_compared.push(NotCompared { arch, only_in: "old" });
            } else if b.contains(&arch) {
                report.not_compared.push(NotCompared { arch, only_in: "new" });
            }
        }
    }
    let mut m = Manager::new(DEFAULT_BUDGET);
    let too_big = |_: OverBudget| DiffError::TooBig { budget: DEFAULT_BUDGET };
    let (x, y) = (old.diagram(&mut m, "old")?, new.diagram(&mut m, "new")?);
    let d = m.apply(x, y, &|p, q| if p == q { SAME } else { p << 32 | q }).map_err(too_big)?;
    for &arch in &archs {
        let table = arch.table();
        let bits: Vec<bool> = (0..32).rev().map(|i| table.audit_arch >> i & 1 == 1).collect();
        let per_arch = m.restrict(d, 0, &bits).map_err(too_big)?;
        let x32_bit = match arch {
            Arch::X86_64 => Some(false),
            Arch::X32 => Some(true),
            _ => None,
        };
        differences_of(&mut m, arch, per_arch, x32_bit, &mut report.differences)?;
    }
    // every other AUDIT_ARCH value
    let known: Vec<(u64, NodeId)> = {
        let mut v: Vec<(u64, NodeId)> = Arch::ALL.iter().map(|a| (u64::from(a.table().audit_arch), TRUE)).collect();
        v.sort_unstable();
        v.dedup();
        v
    };
    let known = crate::prove::word_map(&mut m, crate::bpf::OFF_ARCH, &known, FALSE).map_err(too_big)?;
    let same = m.terminal(SAME);
    let others = m.ite(known, same, d).map_err(too_big)?;
    if let Some((path, v)) = m.pick(others, &|v| v != SAME) {
        let data = input_of(&path);
        let whatever = m.value(others).is_some();
        report.differences.push(Difference {
            arch: None,
            audit_arch: data.arch,
            nr_lo: if whatever { 0 } else { data.nr },
            nr_hi: if whatever { u32::MAX } else { data.nr },
            syscall: None,
            whatever_the_arguments: whatever,
            regions: Vec::new(),
            more_regions: false,
            example: example(None, data.nr, data.args, v),
        });
    }
    report.equal = report.differences.is_empty();
    Ok(report)
}

/// The blocks of syscall numbers below `n` (which tests `nr` and the arguments): `(lo, hi,
/// node of the arguments)`, in order, adjacent blocks with the same node merged.
fn nr_blocks(m: &Manager, n: NodeId) -> Vec<(u32, u32, NodeId)> {
    fn rec(m: &Manager, n: NodeId, level: u16, prefix: u32, out: &mut Vec<(u32, u32, NodeId)>) {
        if out.len() > MAX_BLOCKS {
            return;
        }
        let var = m.var(n);
        if level == 64 || var >= 64 {
            // the bits from `level` on are free
            let free = ((1u64 << (64 - u32::from(level))) - 1) as u32;
            match out.last_mut() {
                Some(last) if last.2 == n && last.1.wrapping_add(1) == prefix && prefix != 0 => last.1 = prefix | free,
                _ => out.push((prefix, prefix | free, n)),
            }
            return;
        }
        let bit = 63 - u32::from(level);
        let (lo, hi) = if var == level { m.children(n) } else { (n, n) };
        rec(m, lo, level + 1, prefix, out);
        rec(m, hi, level + 1, prefix | 1 << bit, out);
    }
    let mut out = Vec::new();
    rec(m, n, 32, 0, &mut out);
    out
}

fn differences_of(m: &mut Manager, arch: Arch, n: NodeId, x32_bit: Option<bool>, out: &mut Vec<Difference>) -> Result<(), DiffError> {
    let table = arch.table();
    let same = m.terminal(SAME);
    let mut named: Vec<u32> = table.syscalls.iter().map(|s| s.nr).collect();
    named.sort_unstable();
    for (lo, hi, child) in nr_blocks(m, n) {
        if child == same {
            continue;
        }
        // numbers of this architecture only (x86_64 and x32 share an AUDIT_ARCH)
        let halves: Vec<(u32, u32)> = match x32_bit {
            None => vec![(lo, hi)],
            Some(want) => {
                let parts = if want {
                    [(0x4000_0000u32, 0x7fff_ffffu32), (0xc000_0000, u32::MAX)]
                } else {
                    [(0, 0x3fff_ffff), (0x8000_0000, 0xbfff_ffff)]
                };
                parts.iter().filter(|&&(a, b)| a.max(lo) <= b.min(hi)).map(|&(a, b)| (a.max(lo), b.min(hi))).collect()
            }
        };
        for (lo, hi) in halves {
            // each named syscall on its own, the numbers between as ranges
            let mut pieces: Vec<(u32, u32)> = Vec::new();
            let mut at = u64::from(lo);
            for &nr in &named[named.partition_point(|&x| x < lo)..named.partition_point(|&x| x <= hi)] {
                if u64::from(nr) > at {
                    pieces.push((at as u32, nr - 1));
                }
                pieces.push((nr, nr));
                at = u64::from(nr) + 1;
            }
            if at <= u64::from(hi) {
                pieces.push((at as u32, hi));
            }
            for (plo, phi) in pieces {
                out.push(difference(m, arch, plo, phi, child)?);
            }
        }
    }
    Ok(())
}

fn difference(m: &mut Manager, arch: Arch, lo: u32, hi: u32, child: NodeId) -> Result<Difference, DiffError> {
    let syscall = if lo == hi { arch.table().by_nr(lo).map(|s| s.name) } else { None };
    let (path, v) = m.pick(child, &|v| v != SAME).ok_or(DiffError::TooBig { budget: DEFAULT_BUDGET })?;
    let args = input_of(&path).args;
    let whatever = m.value(child).is_some();
    let (regions, more_regions) = if whatever { (Vec::new(), false) } else { regions(m, arch, lo, child) };
    Ok(Difference {
        arch: Some(arch),
        audit_arch: arch.table().audit_arch,
        nr_lo: lo,
        nr_hi: hi,
        syscall,
        whatever_the_arguments: whatever,
        regions,
        more_regions,
        example: example(Some(arch), lo, args, v),
    })
}

fn example(arch: Option<Arch>, nr: u32, args: [u64; 6], pair: u64) -> Example {
    let (old_ret, new_ret) = ((pair >> 32) as u32, pair as u32);
    Example { nr, args, old_ret, new_ret, old: ret_name(old_ret), new: ret_name(new_ret), call: call_text(arch, nr, &args) }
}

/// A call as text: `socket(family=0x11, type=3)` (arguments that are 0 left out).
pub fn call_text(arch: Option<Arch>, nr: u32, args: &[u64; 6]) -> String {
    let sys = arch.and_then(|a| a.table().by_nr(nr));
    let name = sys.map_or_else(|| format!("syscall {nr}"), |s| s.name.to_string());
    let shown: Vec<String> = args
        .iter()
        .enumerate()
        .filter(|(_, v)| **v != 0)
        .map(|(i, v)| format!("{}={}", param_name(arch, nr, i as u8), number(*v)))
        .collect();
    format!("{name}({})", shown.join(", "))
}

fn number(v: u64) -> String {
    if v > 9 {
        format!("{v:#x}")
    } else {
        v.to_string()
    }
}

fn param_name(arch: Option<Arch>, nr: u32, arg: u8) -> String {
    if arg == 6 {
        return "instruction_pointer".into();
    }
    // a name that reads register `arg` when written in a policy (prctl's `arg2` is register 1)
    arch.and_then(|a| a.table().by_nr(nr)).map_or_else(|| format!("arg{arg}"), |s| s.arg_name(arg))
}

fn param_width_mask(arch: Arch, nr: u32, arg: u8) -> u64 {
    let params = arch.table().by_nr(nr).map_or(&[][..], |s| s.params);
    match params.get(usize::from(arg)).map(|p| p.width) {
        Some(w @ (Width::W16 | Width::W32)) => w.mask(),
        _ => u64::MAX,
    }
}

/// A test of one argument in a path: `(arg & mask)` within `lo..=hi` (mask 0: untested).
#[derive(Copy, Clone, PartialEq, Eq)]
struct Test {
    mask: u64,
    lo: u64,
    hi: u64,
}

/// A path's tests per argument (6 = instruction pointer).
type Cube = [Test; 7];

/// The regions of an argument diagram where the decision changes, merged where adjacent.
fn regions(m: &Manager, arch: Arch, nr: u32, n: NodeId) -> (Vec<Region>, bool) {
    struct Walk<'a> {
        m: &'a Manager,
        path: Vec<(u16, bool)>,
        cubes: Vec<(Cube, u64)>,
        more: bool,
        memo: rustc_hash::FxHashMap<NodeId, bool>,
        widths: [u64; 7],
    }
    impl Walk<'_> {
        fn walk(&mut self, n: NodeId) {
            if self.more || !self.m.reaches(n, &|v| v != SAME, &mut self.memo) {
                return;
            }
            if let Some(v) = self.m.value(n) {
                let mut fixed = [(0u64, 0u64); 7];
                for &(var, one) in &self.path {
                    let rel = var - word::FIRST_ARG_VAR;
                    let (arg, bit) = ((rel / 64) as usize, 63 - u32::from(rel % 64));
                    fixed[arg].0 |= 1 << bit;
                    if one {
                        fixed[arg].1 |= 1 << bit;
                    }
                }
                let cube: Cube = std::array::from_fn(|i| {
                    let (mask, value) = fixed[i];
                    match interval(mask, value, self.widths[i]) {
                        _ if mask == 0 => Test { mask: 0, lo: 0, hi: 0 },
                        Some((lo, hi)) => Test { mask: self.widths[i], lo, hi },
                        None => Test { mask, lo: value, hi: value },
                    }
                });
                if let Some((last, lv)) = self.cubes.last_mut() {
                    if *lv == v {
                        if let Some(merged) = merge(last, &cube) {
                            *last = merged;
                            return;
                        }
                    }
                }
                if self.cubes.len() == MAX_REGIONS {
                    self.more = true;
                    return;
                }
                self.cubes.push((cube, v));
                return;
            }
            let (lo, hi) = self.m.children(n);
            let var = self.m.var(n);
            self.path.push((var, false));
            self.walk(lo);
            self.path.pop();
            self.path.push((var, true));
            self.walk(hi);
            self.path.pop();
        }
    }
    let widths: [u64; 7] = std::array::from_fn(|i| if i < 6 { param_width_mask(arch, nr, i as u8) } else { u64::MAX });
    let mut w = Walk { m, path: Vec::new(), cubes: Vec::new(), more: false, memo: Default::default(), widths };
    w.walk(n);
    let regions = w
        .cubes
        .into_iter()
        .map(|(cube, v)| {
            let conditions = cube
                .iter()
                .enumerate()
                .filter(|(_, t)| t.mask != 0)
                .map(|(arg, t)| condition(arch, nr, arg as u8, *t, widths[arg]))
                .collect();
            Region { conditions, old: ret_name((v >> 32) as u32), new: ret_name(v as u32) }
        })
        .collect();
    (regions, w.more)
}

/// A path's fixed bits of one argument as an interval `(lo, hi)` within `width`, when they
/// are the top bits of the width (a block of consecutive values).
fn interval(mask: u64, value: u64, width: u64) -> Option<(u64, u64)> {
    let free = width & !mask;
    let is_block = free.checked_add(1).is_none_or(|x| x.is_power_of_two()) && mask & !width == 0;
    is_block.then_some((value, value | free))
}

/// Two cubes with the same decisions as one, when they differ in one argument only and
/// there they are adjacent ranges of the same bits.
fn merge(a: &Cube, b: &Cube) -> Option<Cube> {
    let differing: Vec<usize> = (0..7).filter(|&i| a[i] != b[i]).collect();
    let [i] = differing.as_slice() else { return None };
    let (x, y) = (a[*i], b[*i]);
    if x.mask != y.mask || x.mask == 0 || x.hi.checked_add(1) != Some(y.lo) {
        return None;
    }
    let mut out = *a;
    out[*i] = Test { mask: x.mask, lo: x.lo, hi: y.hi };
    Some(out)
}

fn condition(arch: Arch, nr: u32, arg: u8, t: Test, width: u64) -> Condition {
    let name = param_name(Some(arch), nr, arg);
    let free = width & !t.mask;
    if t.mask != width && t.mask & !width == 0 && free.count_ones() <= 3 {
        // a few free bits in the middle: the members
        let bits: Vec<u32> = (0..64).filter(|b| free >> b & 1 == 1).collect();
        let values: Vec<u64> = (0..1u64 << bits.len())
            .map(|sel| bits.iter().enumerate().fold(t.lo, |v, (i, b)| if sel >> i & 1 == 1 { v | 1 << b } else { v }))
            .collect();
        let text = format!("{name} in {{{}}}", values.iter().map(|v| number(*v)).collect::<Vec<_>>().join(", "));
        return Condition { arg, name, mask: width, lo: values[0], hi: values[values.len() - 1], values, text };
    }
    let text = if t.mask != width {
        format!("{name} & {:#x} == {}", t.mask, number(t.lo))
    } else if t.lo == t.hi {
        format!("{name} == {}", number(t.lo))
    } else if t.hi == width {
        format!("{name} >= {}", number(t.lo))
    } else if t.lo == 0 {
        format!("{name} <= {}", number(t.hi))
    } else {
        format!("{} <= {name} <= {}", number(t.lo), number(t.hi))
    };
    Condition { arg, name, mask: t.mask, lo: t.lo, hi: t.hi, values: Vec::new(), text }
}

impl Report {
    /// The report as text lines (what `scpc diff` and the deploy dry run print):
    /// whole-syscall changes grouped by (architecture, old → new), argument-dependent ones
    /// one by one with their regions and a call; then a summary line.
    pub fn render(&self) -> Vec<String> {
        let mut out = Vec::new();
        for n in &self.not_compared {
            out.push(format!("note: {} is covered only by the {} side: not compared", n.arch, n.only_in));
        }
        let arch_text = |a: Option<Arch>| a.map_or_else(|| "other architectures".to_string(), |a| a.name().to_string());
        // (arch, old, new) → parts
        let mut whole: Vec<((String, u32, u32), Vec<String>)> = Vec::new();
        for d in self.differences.iter().filter(|d| d.whatever_the_arguments) {
            let key = (arch_text(d.arch), d.example.old_ret, d.example.new_ret);
            let part = match (d.syscall, d.arch) {
                (Some(name), _) => name.to_string(),
                (None, None) => format!("every number (e.g. arch {:#x})", d.audit_arch),
                (None, _) if d.nr_lo == d.nr_hi => format!("number {}", d.nr_lo),
                (None, _) => format!("numbers {}..={}", number(u64::from(d.nr_lo)), number(u64::from(d.nr_hi))),
            };
            match whole.iter_mut().find(|(k, _)| *k == key) {
                Some((_, parts)) => parts.push(part),
                None => whole.push((key, vec![part])),
            }
        }
        for ((arch, x, y), parts) in &whole {
            out.push(format!("{arch}: {} → {} ({} syscalls): {}", ret_name(*x), ret_name(*y), parts.len(), parts.join(", ")));
        }
        for d in self.differences.iter().filter(|d| !d.whatever_the_arguments) {
            let name = d.syscall.map_or_else(|| format!("syscall {}", d.nr_lo), str::to_string);
            out.push(format!("{}: {name}, depending on the arguments:", arch_text(d.arch)));
            for r in &d.regions {
                let conds: Vec<&str> = r.conditions.iter().map(|c| c.text.as_str()).collect();
                let when = if conds.is_empty() { "otherwise".to_string() } else { format!("when {}", conds.join(" && ")) };
                out.push(format!("    {when}: {} → {}", r.old, r.new));
            }
            if d.more_regions {
                out.push("    (and more regions)".to_string());
            }
            out.push(format!("    for example {}: {} → {}", d.example.call, d.example.old, d.example.new));
        }
        let archs = self.archs.iter().map(|a| a.name()).collect::<Vec<_>>().join(", ");
        if self.equal {
            out.push(format!(
                "no differences: the same decision for every call ({archs}; proven over all syscall numbers and argument values)"
            ));
        } else {
            out.push(format!("{} difference(s) ({archs}; every call compared)", self.differences.len()));
        }
        out
    }
}
