//! Resolved policy to classic BPF: the arch prologue, then for each architecture the
//! syscall-number space as ranges arranged in the frequency-weighted optimal search tree,
//! with argument checks only inside the leaves of syscalls whose decision depends on them
//! (so unconditionally allowed syscalls stay cacheable by the kernel's action cache), and
//! returns shared at the end.
//!
//! A leaf's argument checks are its decision diagram over the argument words
//! ([`crate::ir::diagram`]), one block of code per node ([`leaf`]), each a search over the
//! node's value classes ([`search`]). The filter must fit the kernel's 4,096 instructions:
//! when the layouts with the fewest expected compares do not, the searches that cost the least
//! in compares per instruction saved (the coldest, by the profile) are laid out denser until it
//! fits, and only when even the densest layout does not fit is the policy refused.
//!
//! It does not check its own output: [`crate::verify`] does, on every build.

mod asm;
mod leaf;
mod search;
pub mod tree;

use std::collections::{BTreeMap, BinaryHeap};

use crate::abi::{Arch, KernelVersion, X32_SYSCALL_BIT};
use crate::bpf::{Program, BPF_JEQ, BPF_JGE, BPF_JSET, BPF_MAXINSNS, OFF_ARCH, OFF_NR};
use crate::policy::{Action, ArchPolicy, Policy};
use crate::profile::Profile;
pub use asm::{Label, Op};
use leaf::{ArgCode, ArgEmitter};
use tree::{Leaf, Range, Tree};

/// Why a policy cannot be compiled.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum CodegenError {
    /// More than BPF_MAXINSNS instructions, even in the densest layout.
    #[error("policy `{policy}` compiles to {size} instructions even in its densest layout, {over} more than the kernel takes ({max}); the syscalls that cost most: {costliest}")]
    #[diagnostic(
        code(scpc::codegen::too_large),
        help("split the policy (a filter per service), use groups of contiguous syscalls, or merge argument values into ranges or masks")
    )]
    TooLarge {
        /// The policy.
        policy: String,
        /// Its size in the densest layout.
        size: usize,
        /// The limit.
        max: usize,
        /// How many instructions too many.
        over: usize,
        /// The syscalls whose argument checks take the most instructions, with their sizes.
        costliest: String,
    },
    /// The code generator produced an invalid jump (a bug).
    #[error("internal error: the code generator produced an invalid jump ({0:?})")]
    #[diagnostic(code(scpc::codegen::bug), help("please report this with the policy that triggers it"))]
    Bug(String),
}

/// The kernel from which the filter is not run for calls it can prove always allowed.
pub const ACTION_CACHE_KERNEL: KernelVersion = KernelVersion::new(5, 11);

/// The accumulator's known content: a `seccomp_data` word with a mask applied.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Acc {
    Unknown,
    Word { offset: u32, mask: u32 },
}

/// Emits symbolic code, tracking what the accumulator holds.
pub(crate) struct Emitter {
    ops: Vec<Op>,
    labels: asm::Labels,
    acc: Acc,
    rets: BTreeMap<u32, Label>,
}

impl Emitter {
    fn new() -> Emitter {
        Emitter { ops: Vec::new(), labels: asm::Labels::new(), acc: Acc::Unknown, rets: BTreeMap::new() }
    }

    fn label(&mut self) -> Label {
        self.labels.push(())
    }

    /// Binds a label that other code may jump to: the accumulator is then unknown.
    fn bind(&mut self, l: Label) {
        self.ops.push(Op::Bind(l));
        self.acc = Acc::Unknown;
    }

    /// Binds a label reached only by falling through from the previous jump (whose other
    /// target is elsewhere): the accumulator is unchanged.
    fn bind_fallthrough(&mut self, l: Label) {
        self.ops.push(Op::Bind(l));
    }

    /// Makes the accumulator hold `word & mask` (mask 0 is never asked for).
    fn load(&mut self, offset: u32, mask: u32) {
        if self.acc == (Acc::Word { offset, mask }) {
            return;
        }
        match self.acc {
            Acc::Word { offset: o, mask: m } if o == offset && m & mask == mask && m != mask => {}
            _ => {
                self.ops.push(Op::Ld(offset));
                self.acc = Acc::Word { offset, mask: u32::MAX };
            }
        }
        if mask != u32::MAX {
            self.ops.push(Op::And(mask));
            self.acc = Acc::Word { offset, mask };
        }
    }

    /// An instruction that is not a jump, as is (the accumulator is then unknown).
    fn push(&mut self, op: Op) {
        self.ops.push(op);
        self.acc = Acc::Unknown;
    }

    fn jmp(&mut self, op: u16, k: u32, t: Label, f: Label) {
        self.ops.push(Op::Jmp { op, k, t, f });
    }

    fn ja(&mut self, l: Label) {
        self.ops.push(Op::Ja(l));
    }

    /// The shared `ret` of a value, placed at the end.
    fn ret_label(&mut self, value: u32) -> Label {
        if let Some(l) = self.rets.get(&value) {
            return *l;
        }
        let l = self.label();
        self.rets.insert(value, l);
        l
    }

    fn finish(mut self) -> Result<Program, asm::AsmError> {
        let rets: Vec<(u32, Label)> = self.rets.iter().map(|(v, l)| (*v, *l)).collect();
        for (value, l) in rets {
            self.ops.push(Op::Bind(l));
            self.ops.push(Op::Ret(value));
        }
        asm::assemble(self.ops, &mut self.labels)
    }
}

/// Compiles a resolved policy for all its targets into one filter.
pub fn emit(policy: &Policy, profile: &Profile) -> Result<Program, CodegenError> {
    let mut args: Vec<ArgCode> = policy.targets.iter().map(|t| ArgCode::new(policy, t, profile)).collect();
    for round in 0.. {
        let (program, sizes) = emit_with(policy, profile, &args)?;
        let size = program.insns.len();
        if size <= BPF_MAXINSNS {
            return Ok(program);
        }
        if args.iter().all(ArgCode::densest) {
            return Err(too_large(policy, size, sizes));
        }
        if round >= 8 {
            args.iter_mut().for_each(ArgCode::make_densest);
            continue;
        }
        shrink(&mut args, size - BPF_MAXINSNS);
    }
    unreachable!("the loop returns")
}

/// The instructions one syscall's argument checks took: (architecture, number, size).
type LeafSize = (Arch, u32, usize);

/// A step to a denser layout, ordered by compares added per instruction saved.
#[derive(PartialEq)]
struct Step(f64, usize, crate::ir::diagram::Node);

impl Eq for Step {}

impl PartialOrd for Step {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Step {
    // the cheapest step first out of a max-heap
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        other.0.total_cmp(&self.0).then(other.1.cmp(&self.1)).then(other.2.cmp(&self.2))
    }
}

/// Lays out denser the searches that lose the fewest compares per instruction saved, until
/// the savings cover `over` (and a little more: islands and trampolines move too).
fn shrink(args: &mut [ArgCode], over: usize) {
    let want = over + over / 32 + 4;
    let mut heap = BinaryHeap::new();
    for (t, a) in args.iter().enumerate() {
        for (n, saved, added) in a.denser_steps() {
            heap.push(Step(added / saved as f64, t, n));
        }
    }
    let mut saved_total = 0;
    while saved_total < want {
        let Some(Step(_, t, n)) = heap.pop() else { break };
        let Some((saved, _)) = args[t].next_step(n) else { continue };
        args[t].level[n] += 1;
        saved_total += saved;
        if let Some((saved, added)) = args[t].next_step(n) {
            heap.push(Step(added / saved as f64, t, n));
        }
    }
}

fn too_large(policy: &Policy, size: usize, mut sizes: Vec<LeafSize>) -> CodegenError {
    sizes.sort_by(|a, b| b.2.cmp(&a.2).then(a.0.cmp(&b.0)).then(a.1.cmp(&b.1)));
    let costliest: Vec<String> = sizes
        .iter()
        .take(5)
        .map(|(arch, nr, n)| {
            let name = arch.table().by_nr(*nr).map_or_else(|| nr.to_string(), |s| s.name.to_string());
            format!("{name} on {arch} ({n})")
        })
        .collect();
    CodegenError::TooLarge {
        policy: policy.name.clone(),
        size,
        max: BPF_MAXINSNS,
        over: size - BPF_MAXINSNS,
        costliest: if costliest.is_empty() { "none (the syscall tree alone)".into() } else { costliest.join(", ") },
    }
}

/// One emission of the whole filter with the argument checks' current layouts; also the
/// instructions each syscall's argument checks took.
fn emit_with(policy: &Policy, profile: &Profile, args: &[ArgCode]) -> Result<(Program, Vec<LeafSize>), CodegenError> {
    let mut e = Emitter::new();
    let mut sizes = Vec::new();
    let badarch = e.ret_label(policy.badarch.ret_value());
    e.load(OFF_ARCH, u32::MAX);
    // Group targets by AUDIT_ARCH (x86_64 and x32 share one), heaviest first.
    let mut groups: Vec<(u32, Vec<usize>)> = Vec::new();
    for (i, t) in policy.targets.iter().enumerate() {
        let audit = t.arch.table().audit_arch;
        match groups.iter_mut().find(|g| g.0 == audit) {
            Some(g) => g.1.push(i),
            None => groups.push((audit, vec![i])),
        }
    }
    // jeq a0, L0, N1; N1: jeq a1, L1, N2; ... jeq an, Ln, badarch; L0: ... (the first
    // group's code falls through from the last compare when there is one group)
    let labels: Vec<Label> = groups.iter().map(|_| e.label()).collect();
    for (i, (audit, _)) in groups.iter().enumerate() {
        let next = if i + 1 == groups.len() { badarch } else { e.label() };
        e.jmp(BPF_JEQ, *audit, labels[i], next);
        if next != badarch {
            e.bind_fallthrough(next);
        }
    }
    for (i, (_, members)) in groups.iter().enumerate() {
        e.bind(labels[i]);
        e.load(OFF_NR, u32::MAX);
        let find = |arch: Arch| members.iter().copied().find(|&t| policy.targets[t].arch == arch);
        let mut tree = |e: &mut Emitter, t: usize| {
            let mut leaves = Leaves { target: &policy.targets[t], args: ArgEmitter::new(&args[t]), code: &args[t], sizes: &mut sizes };
            arch_tree(e, policy, profile, &mut leaves);
        };
        match (find(Arch::X86_64), find(Arch::X32)) {
            (Some(x86), None) => tree(&mut e, x86),
            (Some(x86), Some(x32)) => {
                let (native, x32_label) = (e.label(), e.label());
                e.jmp(BPF_JSET, X32_SYSCALL_BIT, x32_label, native);
                e.bind_fallthrough(native);
                tree(&mut e, x86);
                e.bind(x32_label);
                e.load(OFF_NR, u32::MAX);
                tree(&mut e, x32);
            }
            (None, Some(x32)) => {
                let ok = e.label();
                e.jmp(BPF_JSET, X32_SYSCALL_BIT, ok, badarch);
                e.bind_fallthrough(ok);
                tree(&mut e, x32);
            }
            (None, None) => tree(&mut e, members[0]),
        }
    }
    let program = e.finish().map_err(|err| CodegenError::Bug(format!("{err:?}")))?;
    Ok((program, sizes))
}

/// What the syscall tree of one architecture needs for its argument-checked leaves.
struct Leaves<'a, 'b> {
    target: &'a ArchPolicy,
    code: &'a ArgCode,
    args: ArgEmitter<'a>,
    sizes: &'b mut Vec<LeafSize>,
}

impl Leaves<'_, '_> {
    /// The argument checks of `nr`, here.
    fn emit(&mut self, e: &mut Emitter, nr: u32) {
        let before = e.ops.len();
        self.args.leaf(e, nr);
        self.sizes.push((self.target.arch, nr, e.ops.iter().skip(before).filter(|o| !matches!(o, Op::Bind(_))).count()));
    }
}

/// The ranges of one architecture with their leaves and profile weights.
pub fn arch_ranges(policy: &Policy, target: &ArchPolicy, profile: &Profile) -> Vec<Range> {
    ranges_of(policy, target, profile, &ArgCode::new(policy, target, profile))
}

/// [`arch_ranges`], with syscalls whose conditions fold to a constant decision as constants.
fn ranges_of(policy: &Policy, target: &ArchPolicy, profile: &Profile, args: &ArgCode) -> Vec<Range> {
    let table = target.arch.table();
    let cache_absorbs_allow = policy.kernel >= ACTION_CACHE_KERNEL;
    let mut points: BTreeMap<u32, Leaf> = BTreeMap::new();
    for s in table.syscalls {
        let newer = policy.newer.filter(|_| !s.since.present_in(policy.kernel));
        points.insert(s.nr, Leaf::Ret(newer.unwrap_or(policy.default).ret_value()));
    }
    for (nr, entries) in &target.syscalls {
        let leaf = match entries.first() {
            Some(first) if first.cond.is_none() => Leaf::Ret(policy.rules[first.rule].action.ret_value()),
            Some(_) => match args.constant(*nr) {
                Some(v) => Leaf::Ret(v),
                None => Leaf::Code(*nr),
            },
            None => continue,
        };
        points.insert(*nr, leaf);
    }
    // a profile that records nothing keeps one tier for every unseen number
    let expects_checked = !profile.is_uniform();
    let weigh = |nr: u32, leaf: Leaf| {
        let w = table.by_nr(nr).map_or(0.0, |s| profile.weight(s.name));
        match leaf {
            Leaf::Ret(v) if cache_absorbs_allow && v == Action::Allow.ret_value() => w * Profile::CACHED,
            Leaf::Code(_) if expects_checked => w + Profile::EXPECTED,
            _ => w + Profile::EPSILON,
        }
    };
    let pts: Vec<(u32, Leaf, f64)> = points.into_iter().map(|(nr, leaf)| (nr, leaf, weigh(nr, leaf))).collect();
    let ranges = tree::ranges(&pts, Leaf::Ret(policy.default.ret_value()), Profile::EPSILON);
    if folds_x32_check(policy, target) {
        // x32 calls (bit 30 set) get the badarch action inside the tree: the numbers
        // 0x40000000..=0x7fffffff and 0xc0000000..=0xffffffff, none of them an x86_64 syscall
        let badarch = Leaf::Ret(policy.badarch.ret_value());
        let ranges = tree::paint(ranges, X32_SYSCALL_BIT, 0x7fff_ffff, badarch, Profile::EPSILON);
        return tree::paint(ranges, 0xc000_0000, u32::MAX, badarch, Profile::EPSILON);
    }
    ranges
}

/// Whether the x86_64 tree itself sends x32 calls to the badarch action (x32 is not a
/// target), which saves the `jset` every call would otherwise pay.
fn folds_x32_check(policy: &Policy, target: &ArchPolicy) -> bool {
    target.arch == Arch::X86_64 && policy.arch(Arch::X32).is_none()
}

fn arch_tree(e: &mut Emitter, policy: &Policy, profile: &Profile, leaves: &mut Leaves) {
    let (hot, ranges) = tree::hot_first(ranges_of(policy, leaves.target, profile, leaves.code));
    // `jeq nr` for each hot number, heaviest first; their leaves come after the tree
    let mut hot_leaves = Vec::new();
    for h in &hot {
        let to = match h.leaf {
            Leaf::Ret(v) => e.ret_label(v),
            Leaf::Code(nr) => {
                let l = e.label();
                hot_leaves.push((l, nr));
                l
            }
        };
        let next = e.label();
        e.jmp(BPF_JEQ, h.lo, to, next);
        e.bind_fallthrough(next);
    }
    let weights: Vec<f64> = ranges.iter().map(|r| r.weight).collect();
    let tree = Tree::optimal(&weights);
    let mut prefix = vec![0.0];
    for w in &weights {
        prefix.push(prefix[prefix.len() - 1] + w);
    }
    let layout = Layout { ranges: &ranges, tree: &tree, prefix: &prefix };
    node(e, &layout, leaves, 0, ranges.len() - 1);
    for (l, nr) in hot_leaves {
        e.bind(l);
        leaves.emit(e, nr);
    }
}

/// The syscall tree of one architecture.
struct Layout<'a> {
    ranges: &'a [Range],
    tree: &'a Tree,
    prefix: &'a [f64],
}

/// The code of ranges `i..=j`, or the ret label when it is a single constant leaf.
fn target_of(e: &mut Emitter, ranges: &[Range], i: usize, j: usize) -> Option<Label> {
    match ranges[i].leaf {
        Leaf::Ret(v) if i == j => Some(e.ret_label(v)),
        _ => None,
    }
}

fn node(e: &mut Emitter, layout: &Layout, leaves: &mut Leaves, i: usize, j: usize) {
    let ranges = layout.ranges;
    if i == j {
        match ranges[i].leaf {
            Leaf::Ret(v) => {
                let l = e.ret_label(v);
                e.ja(l);
            }
            Leaf::Code(nr) => leaves.emit(e, nr),
        }
        return;
    }
    let k = layout.tree.split(i, j);
    let pivot = ranges[k + 1].lo;
    let prefix = layout.prefix;
    let (left_w, right_w) = (prefix[k + 1] - prefix[i], prefix[j + 1] - prefix[k + 1]);
    let left = target_of(e, ranges, i, k);
    let right = target_of(e, ranges, k + 1, j);
    let (lt, rt) = (left.unwrap_or_else(|| e.label()), right.unwrap_or_else(|| e.label()));
    e.jmp(BPF_JGE, pivot, rt, lt);
    // The heavier side that has code comes next, so that it falls through.
    let right_first = right.is_none() && (left.is_some() || right_w > left_w);
    let order: [(bool, Label, usize, usize); 2] = if right_first {
        [(right.is_none(), rt, k + 1, j), (left.is_none(), lt, i, k)]
    } else {
        [(left.is_none(), lt, i, k), (right.is_none(), rt, k + 1, j)]
    };
    let mut first = true;
    for (has_code, label, a, b) in order {
        if has_code {
            if first {
                e.bind_fallthrough(label);
            } else {
                // reached only from the compare above: the accumulator still holds nr
                e.bind(label);
                e.acc = Acc::Word { offset: OFF_NR, mask: u32::MAX };
            }
            node(e, layout, leaves, a, b);
            first = false;
        }
    }
}
