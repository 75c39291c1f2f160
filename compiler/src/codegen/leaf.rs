//! Argument checks: the decision diagrams of [`super::diagram`] as code, one block per node.
//!
//! A node that tests `word & mask` needs the accumulator to hold the word (or the word under
//! a wider mask). Along a path the variables of one word come one after another, so the word
//! is loaded once, by the first node of the word on the path; the nodes after it find it in
//! the accumulator. Only an `and` changes the accumulator: a node that tests "some bit of the
//! mask is set" uses `jset` and keeps it, one that compares `word & mask` with values masks
//! it first. A later node of the same word whose mask is not inside the earlier one's reads
//! the word back from scratch memory (`ld M[word]`), which the first node of the word stored
//! (`st M[word]`) after loading it: the word is never loaded from `seccomp_data` twice in a
//! row on any path.
//!
//! A node reached by different paths may need different entries (a load of the word, a load
//! from scratch memory, or neither): it is emitted once per kind of entry needed (an
//! *instance*), each with entry points before its load, before its mask and at its search.
//! An instance is placed after all the instances that jump to it (jumps only go forward):
//! right after the last of them is emitted.

use cranelift_entity::{entity_impl, PrimaryMap, SecondaryMap};

use super::asm::{Label, Op};
use super::search::{self, Class, Plan};
use super::Emitter;
use crate::bpf::{off_arg_hi, off_arg_lo, BPF_JSET};
use crate::ir::diagram::{Diagrams, Node, NodeData, Terminal};
use crate::policy::{Action, ArchPolicy, Policy};
use crate::profile::Profile;

/// An emitted copy of a node, for one kind of entry.
#[derive(Copy, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Inst(u32);
entity_impl!(Inst, "i");

/// How an instance gets its word into the accumulator.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Kind {
    /// `ld [word]`: the accumulator holds another word (or `nr`).
    Load,
    /// `ld M[word]`: the accumulator holds the word under a mask that hides bits this node
    /// reads.
    Reload,
    /// Nothing: every path here arrives with the word in the accumulator.
    Held,
}

/// Where a jump enters an instance.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Entry {
    /// Before its load.
    Start,
    /// Before its mask (the accumulator holds the word under a wider mask).
    Mask,
    /// At its test.
    Test,
}

/// Where a class of an instance leads.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum To {
    Ret(u32),
    Inst(Inst, Entry),
}

/// How a node tests its word.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Mode {
    /// Compares the whole word.
    Search,
    /// `jset mask`: its two classes are "no bit of the mask set" and the rest.
    Jset,
    /// `and mask`, then compares.
    MaskSearch,
}

#[derive(Clone)]
struct NodeInfo {
    mode: Mode,
    /// Its distinct children, in class order.
    children: Vec<Node>,
    /// Its classes (targets: indices into `children`).
    classes: Vec<Class>,
    /// The layouts of its search, cheapest first.
    ladder: Vec<Plan>,
    /// How often calls reach it (the profile's weight of the syscalls that do).
    reach: f64,
}

struct InstData {
    node: Node,
    kind: Kind,
    /// Store the loaded word in scratch memory for a later [`Kind::Reload`].
    store: bool,
    /// Per child of the node.
    to: Vec<To>,
    /// Instances and syscall leaves that jump here.
    parents: u32,
}

/// The argument checks of one architecture: the decision of every syscall whose decision
/// depends on its arguments, and how to emit it.
pub(super) struct ArgCode {
    dd: Diagrams,
    /// Syscall number → its decision node.
    roots: std::collections::BTreeMap<u32, Node>,
    nodes: SecondaryMap<Node, Option<NodeInfo>>,
    insts: PrimaryMap<Inst, InstData>,
    root_inst: SecondaryMap<Node, Option<Inst>>,
    /// The chosen layout of each node's search (an index into its ladder).
    pub level: SecondaryMap<Node, usize>,
    /// Instances of each node.
    copies: SecondaryMap<Node, u32>,
}

/// The mask that keeps every bit.
const FULL: u32 = u32::MAX;

/// The share of calls assumed to pass a value in the class holding zero when the profile
/// says nothing about an argument word and that class is allowed (the rest is spread evenly
/// over the other classes).
pub const ZERO_CLASS_PRIOR: f64 = 0.75;

impl ArgCode {
    /// The decisions of `target`'s syscalls and their code's structure.
    pub fn new(policy: &Policy, target: &ArchPolicy, profile: &Profile) -> ArgCode {
        let mut dd = Diagrams::new(target);
        let default = policy.default.ret_value();
        let mut roots = std::collections::BTreeMap::new();
        for (nr, entries) in &target.syscalls {
            if entries.first().is_some_and(|e| e.cond.is_some()) {
                roots.insert(*nr, dd.syscall(policy, target, entries, default));
            }
        }
        let mut code = ArgCode {
            dd,
            roots,
            nodes: SecondaryMap::new(),
            insts: PrimaryMap::new(),
            root_inst: SecondaryMap::new(),
            level: SecondaryMap::new(),
            copies: SecondaryMap::new(),
        };
        code.describe(target, profile);
        code.instantiate();
        code
    }

    /// The return value of a syscall whose decision turned out not to depend on its arguments
    /// (its conditions are always or never true), `None` when it does.
    pub fn constant(&self, nr: u32) -> Option<u32> {
        match self.roots.get(&nr).map(|n| self.dd.data(*n)) {
            Some(NodeData::Leaf(Terminal::Ret(v))) => Some(*v),
            _ => None,
        }
    }

    /// Which words each syscall's profile values give: `(offset, value, fraction)`.
    fn profile_words(target: &ArchPolicy, nr: u32, profile: &Profile) -> Vec<(u32, u32, f64)> {
        let table = target.arch.table();
        let Some(sys) = table.by_nr(nr) else { return Vec::new() };
        let mut out = Vec::new();
        for (key, value, fraction) in profile.arg_weights(sys.name) {
            let (Some((reg, reg_hi)), Some(value)) = (key.registers(table, sys.name), value.resolve(table)) else { continue };
            out.push((off_arg_lo(reg), value as u32, *fraction));
            let hi = reg_hi.map_or(off_arg_hi(reg), off_arg_lo);
            out.push((hi, (value >> 32) as u32, *fraction));
        }
        out
    }

    /// Every test node reached from a syscall: its mode, classes (weighed by the profile)
    /// and layouts.
    fn describe(&mut self, target: &ArchPolicy, profile: &Profile) {
        // the syscalls reaching each node
        let mut reached: SecondaryMap<Node, Vec<u32>> = SecondaryMap::new();
        for (&nr, &root) in &self.roots {
            let mut stack = vec![root];
            while let Some(n) = stack.pop() {
                let NodeData::Test { edges, .. } = self.dd.data(n) else { continue };
                if reached[n].last() == Some(&nr) {
                    continue;
                }
                reached[n].push(nr);
                stack.extend(edges.iter().map(|e| e.1));
            }
        }
        let table = target.arch.table();
        let weight_of = |nr: u32| table.by_nr(nr).map_or(0.0, |s| profile.weight(s.name)) + Profile::EPSILON;
        let words: std::collections::BTreeMap<u32, Vec<(u32, u32, f64)>> =
            self.roots.keys().map(|&nr| (nr, Self::profile_words(target, nr, profile))).collect();
        for (n, nrs) in reached.iter() {
            if nrs.is_empty() {
                continue;
            }
            let NodeData::Test { var, edges } = self.dd.data(n) else { continue };
            let var = self.dd.var(*var);
            let mut children: Vec<Node> = Vec::new();
            let mut classes = Vec::with_capacity(edges.len());
            for &(start, child) in edges.iter() {
                let target = children.iter().position(|c| *c == child).unwrap_or_else(|| {
                    children.push(child);
                    children.len() - 1
                });
                classes.push(Class { start, target, weight: 1.0 });
            }
            // Without a profile: when the values from zero are allowed, they weigh three
            // quarters (programs pass zero and small values most, no flags, the common
            // families and descriptors, and mostly make calls their policy allows); otherwise
            // every class weighs the same. The prior sums to 1.
            let zero_allowed =
                matches!(self.dd.data(children[classes[0].target]), NodeData::Leaf(Terminal::Ret(v)) if *v == Action::Allow.ret_value());
            let zero_share = if zero_allowed { ZERO_CLASS_PRIOR } else { 1.0 / classes.len() as f64 };
            let others = classes.len().saturating_sub(1).max(1) as f64;
            let prior = |c: usize| if c == 0 { zero_share } else { (1.0 - zero_share) / others };
            for (c, class) in classes.iter_mut().enumerate() {
                class.weight = prior(c);
            }
            // profile values of this word: a mix of what they say and a uniform floor
            let reach: f64 = nrs.iter().map(|&nr| weight_of(nr)).sum();
            let mut seen = vec![0.0; classes.len()];
            let mut total = 0.0;
            for &nr in nrs {
                let share = weight_of(nr) / reach;
                for &(offset, value, fraction) in words.get(&nr).into_iter().flatten() {
                    if offset == var.offset {
                        let v = value & var.mask;
                        let c = classes.partition_point(|c| c.start <= v) - 1;
                        seen[c] += fraction * share;
                        total += fraction * share;
                    }
                }
            }
            if total > 0.0 {
                let known = total.min(1.0);
                for (c, (class, s)) in classes.iter_mut().zip(&seen).enumerate() {
                    class.weight = (1.0 - known + 0.01) * prior(c) + s;
                }
            }
            let mode = if var.mask == FULL {
                Mode::Search
            } else if edges.len() == 2 && edges[1].0 == var.mask & var.mask.wrapping_neg() {
                Mode::Jset
            } else {
                Mode::MaskSearch
            };
            let ladder = if mode == Mode::Jset { Vec::new() } else { search::ladder(&classes) };
            self.nodes[n] = Some(NodeInfo { mode, children, classes, ladder, reach });
        }
    }

    /// The instances of every node (see the module docs), parents before children.
    fn instantiate(&mut self) {
        #[derive(Copy, Clone)]
        enum Arrive {
            /// From another word or from the syscall tree.
            Other,
            /// From a node of the same word, leaving it under this mask.
            Same(u32),
        }
        let mut order: Vec<Node> = self.nodes.iter().filter(|(_, i)| i.is_some()).map(|(n, _)| n).collect();
        order.sort_by_key(|&n| match self.dd.data(n) {
            NodeData::Test { var, .. } => (*var, n),
            NodeData::Leaf(_) => (u16::MAX, n),
        });
        // per node: (the parent instance and its child index, or none from a syscall leaf; how)
        type Arrival = (Option<(Inst, usize)>, Arrive);
        let mut arrivals: SecondaryMap<Node, Vec<Arrival>> = SecondaryMap::new();
        // syscalls sharing a decision share its instance: one arrival, one parent each
        let mut leaves: SecondaryMap<Node, u32> = SecondaryMap::new();
        for &root in self.roots.values() {
            if self.nodes[root].is_some() {
                if leaves[root] == 0 {
                    arrivals[root].push((None, Arrive::Other));
                }
                leaves[root] += 1;
            }
        }
        // the mask under which each instance leaves the word in the accumulator
        let mut exit: SecondaryMap<Inst, u32> = SecondaryMap::new();
        for n in order {
            let incoming = std::mem::take(&mut arrivals[n]);
            if incoming.is_empty() {
                continue;
            }
            let Some(info) = &self.nodes[n] else { continue };
            let NodeData::Test { var, .. } = self.dd.data(n) else { continue };
            let var = self.dd.var(*var);
            let fits = |held: u32| var.mask & !held == 0;
            let need_load = incoming.iter().any(|(_, a)| matches!(a, Arrive::Other));
            let need_reload = incoming.iter().any(|(_, a)| matches!(a, Arrive::Same(h) if !fits(*h)));
            let make = |insts: &mut PrimaryMap<Inst, InstData>, kind| {
                insts.push(InstData { node: n, kind, store: false, to: Vec::new(), parents: 0 })
            };
            let load = need_load.then(|| make(&mut self.insts, Kind::Load));
            let reload = need_reload.then(|| make(&mut self.insts, Kind::Reload));
            let held = (!need_load && !need_reload).then(|| make(&mut self.insts, Kind::Held));
            let Some(any) = load.or(reload).or(held) else { continue };
            let mut guarantee: Vec<(Inst, u32)> = [load, reload, held].into_iter().flatten().map(|i| (i, FULL)).collect();
            for (parent, arrive) in incoming {
                let (inst, entry, held) = match arrive {
                    Arrive::Other => (load.unwrap_or(any), Entry::Start, FULL),
                    Arrive::Same(h) if !fits(h) => (reload.unwrap_or(any), Entry::Start, FULL),
                    Arrive::Same(h) => {
                        let entry = if info.mode == Mode::MaskSearch && h != var.mask { Entry::Mask } else { Entry::Test };
                        (any, entry, h)
                    }
                };
                if let Some(g) = guarantee.iter_mut().find(|g| g.0 == inst) {
                    g.1 &= held;
                }
                // a parent instance sends one arrival per child node
                match parent {
                    Some((p, child)) => {
                        self.insts[p].to[child] = To::Inst(inst, entry);
                        self.insts[inst].parents += 1;
                    }
                    None => {
                        self.root_inst[n] = Some(inst);
                        self.insts[inst].parents += leaves[n];
                    }
                }
            }
            for (inst, g) in guarantee {
                exit[inst] = match info.mode {
                    Mode::Search => FULL,
                    Mode::MaskSearch => var.mask,
                    Mode::Jset => g,
                };
                let mut to = Vec::with_capacity(info.children.len());
                for (i, &child) in info.children.iter().enumerate() {
                    match self.dd.data(child) {
                        NodeData::Leaf(t) => to.push(To::Ret(match t {
                            Terminal::Ret(v) => *v,
                            // conditions' terminals never reach a syscall's decision
                            _ => u32::MAX,
                        })),
                        NodeData::Test { var: cv, .. } => {
                            to.push(To::Ret(u32::MAX)); // set when the child is reached
                            let same = self.dd.var(*cv).offset == var.offset;
                            arrivals[child].push((Some((inst, i)), if same { Arrive::Same(exit[inst]) } else { Arrive::Other }));
                        }
                    }
                }
                self.insts[inst].to = to;
                self.copies[n] += 1;
            }
        }
        // an instance that loads its word stores it when a reload follows on the same word
        let mut needs: SecondaryMap<Inst, bool> = SecondaryMap::new();
        let ids: Vec<Inst> = self.insts.keys().collect();
        for &i in ids.iter().rev() {
            let word = self.word_of(i);
            let need = self.insts[i].to.iter().any(|t| match *t {
                To::Inst(j, _) => self.word_of(j) == word && (self.insts[j].kind == Kind::Reload || needs[j]),
                To::Ret(_) => false,
            });
            needs[i] = need;
            self.insts[i].store = need && self.insts[i].kind == Kind::Load;
        }
    }

    fn word_of(&self, i: Inst) -> u32 {
        match self.dd.data(self.insts[i].node) {
            NodeData::Test { var, .. } => self.dd.var(*var).offset,
            NodeData::Leaf(_) => u32::MAX,
        }
    }

    /// The next smaller layout of every node that has one: `(node, instructions saved,
    /// weighted compares added)`.
    pub fn denser_steps(&self) -> Vec<(Node, usize, f64)> {
        self.nodes.keys().filter_map(|n| self.next_step(n).map(|(saved, added)| (n, saved, added))).collect()
    }

    /// What moving `n` to its next smaller layout saves (instructions, over all its copies)
    /// and costs (compares per call, times how often calls reach it).
    pub fn next_step(&self, n: Node) -> Option<(usize, f64)> {
        let info = self.nodes[n].as_ref()?;
        let level = self.level[n];
        let (now, next) = (info.ladder.get(level)?, info.ladder.get(level + 1)?);
        let saved = (now.size - next.size) * self.copies[n] as usize;
        let total: f64 = info.classes.iter().map(|c| c.weight).sum();
        Some((saved, (next.cost - now.cost) / total * info.reach))
    }

    /// Whether every node has its smallest layout.
    pub fn densest(&self) -> bool {
        self.nodes.iter().all(|(n, info)| info.as_ref().is_none_or(|i| self.level[n] + 1 >= i.ladder.len()))
    }

    /// Gives every node its smallest layout.
    pub fn make_densest(&mut self) {
        let levels: Vec<(Node, usize)> =
            self.nodes.iter().filter_map(|(n, i)| i.as_ref().map(|i| (n, i.ladder.len().saturating_sub(1)))).collect();
        for (n, l) in levels {
            self.level[n] = l;
        }
    }
}

/// The emission of one architecture's argument checks, inside one emission of the filter.
pub(super) struct ArgEmitter<'a> {
    code: &'a ArgCode,
    labels: SecondaryMap<Inst, Option<[Label; 3]>>,
    remaining: SecondaryMap<Inst, u32>,
}

impl<'a> ArgEmitter<'a> {
    pub fn new(code: &'a ArgCode) -> ArgEmitter<'a> {
        let mut remaining = SecondaryMap::new();
        for (i, d) in code.insts.iter() {
            remaining[i] = d.parents;
        }
        ArgEmitter { code, labels: SecondaryMap::new(), remaining }
    }

    fn label(&mut self, e: &mut Emitter, inst: Inst, entry: Entry) -> Label {
        let ls = match self.labels[inst] {
            Some(ls) => ls,
            None => {
                let ls = [e.label(), e.label(), e.label()];
                self.labels[inst] = Some(ls);
                ls
            }
        };
        ls[entry as usize]
    }

    /// The code of syscall `nr`'s argument checks, here (the accumulator holds `nr`), or a
    /// jump to it when it is shared with a syscall emitted later.
    pub fn leaf(&mut self, e: &mut Emitter, nr: u32) {
        let code = self.code;
        let Some(inst) = code.roots.get(&nr).and_then(|r| code.root_inst[*r]) else { return };
        self.remaining[inst] -= 1;
        if self.remaining[inst] == 0 {
            self.emit(e, inst);
        } else {
            let l = self.label(e, inst, Entry::Start);
            e.ja(l);
        }
    }

    fn emit(&mut self, e: &mut Emitter, inst: Inst) {
        let code = self.code;
        let d = &code.insts[inst];
        let Some(info) = &code.nodes[d.node] else { return };
        let NodeData::Test { var, .. } = code.dd.data(d.node) else { return };
        let var = code.dd.var(*var);
        let [start, mask, test] = [Entry::Start, Entry::Mask, Entry::Test].map(|en| self.label(e, inst, en));
        e.bind(start);
        match d.kind {
            Kind::Load => {
                e.push(Op::Ld(var.offset));
                if d.store {
                    e.push(Op::St(var.word()));
                }
            }
            Kind::Reload => e.push(Op::LdMem(var.word())),
            Kind::Held => {}
        }
        e.bind(mask);
        if info.mode == Mode::MaskSearch {
            e.push(Op::And(var.mask));
        }
        e.bind(test);
        let targets: Vec<Label> =
            d.to.iter()
                .map(|t| match *t {
                    To::Ret(v) => e.ret_label(v),
                    To::Inst(i, entry) => self.label(e, i, entry),
                })
                .collect();
        match info.mode {
            Mode::Jset => {
                let (none, some) = (info.classes[0].target, info.classes[1].target);
                e.jmp(BPF_JSET, var.mask, targets[some], targets[none]);
            }
            Mode::Search | Mode::MaskSearch => {
                let plan = &info.ladder[code.level[d.node].min(info.ladder.len() - 1)];
                search::emit(e, &info.classes, plan, &targets);
            }
        }
        // children whose last parent this was come next
        let mut done: Vec<Inst> = Vec::new();
        for t in &d.to {
            if let To::Inst(c, _) = *t {
                if done.contains(&c) {
                    continue;
                }
                done.push(c);
                self.remaining[c] -= 1;
                if self.remaining[c] == 0 {
                    self.emit(e, c);
                }
            }
        }
    }
}
