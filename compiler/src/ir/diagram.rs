//! The decision of a syscall as a function of its argument words: a reduced, ordered,
//! multi-valued decision diagram whose variables are the 32-bit argument words a filter
//! loads, each seen through a mask, and whose terminals are return values.
//!
//! A node tests one variable: its values are split into *classes* (runs of consecutive
//! values, each given by its first value), each leading to a child. Classes are normalised:
//! a class holds at least one value the masked word can take (a value whose bits are all in
//! the mask), starts at the first such value, and neighbours lead to different children, so
//! a condition that the argument's width or mask makes always true or always false leaves no
//! node at all, runs of values (`in {1, 2, 3, 4}`) become one class, and duplicate or
//! subsumed values vanish. Nodes are unique (a node is never built twice), so identical
//! subtrees are shared, within a syscall and between syscalls of one architecture.
//!
//! Variables are ordered by argument, the high half of a 64-bit argument before its low half,
//! and on one word the unmasked variable first, then masks with more bits before masks with
//! fewer: every path tests the variables of one word one after another, so the word is loaded
//! once (the back end's leaf code relies on it). The checker asks the same diagrams which
//! conditions always or never hold, to warn of them.
//!
//! The rules of a syscall are combined first-match-first by halving (the first half's
//! diagram, with "no match" replaced by the second half's), so a syscall with `n` rules costs
//! about `n log n`, not `n²`.

use cranelift_entity::{entity_impl, PrimaryMap};
use rustc_hash::FxHashMap;
use scpc_lang::ast::CmpOp;

use crate::abi::{off_arg_hi, off_arg_lo};
use crate::policy::{ArchPolicy, CondData, CondId, Entry, Policy};

/// A 32-bit argument word as a node reads it: `seccomp_data` word at `offset`, `& mask`.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Var {
    /// Byte offset of the word in `seccomp_data`.
    pub offset: u32,
    /// The bits read (never 0).
    pub mask: u32,
}

impl Var {
    /// The index of the word among the argument words (0..12): its scratch memory slot.
    pub fn word(self) -> u32 {
        (self.offset - off_arg_lo(0)) / 4
    }
}

/// A node of the diagrams of one architecture.
#[derive(Copy, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Node(u32);
entity_impl!(Node, "n");

/// What a terminal node holds.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Terminal {
    /// A filter return value.
    Ret(u32),
    /// A condition holds.
    True,
    /// A condition does not hold.
    False,
    /// No rule has matched (while rules are combined).
    NoMatch,
}

/// A node: a terminal, or a test of a variable.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum NodeData {
    /// A terminal.
    Leaf(Terminal),
    /// A test of the variable of rank `var`: values from `edges[i].0` up to the next class's
    /// first value lead to `edges[i].1`. The first class starts at 0; there are at least two.
    Test {
        /// The variable's rank in the order.
        var: u16,
        /// The classes.
        edges: Box<[(u32, Node)]>,
    },
}

/// The smallest value at least `a` whose bits are all in `m`, if any.
pub fn next_feasible(m: u32, a: u32) -> Option<u32> {
    if a & !m == 0 {
        return Some(a);
    }
    // the highest bit of `a` outside the mask must be cleared by carrying into the mask's
    // bits above it; the bits below become 0
    let p = 31 - (a & !m).leading_zeros();
    let above = if p == 31 { 0 } else { u32::MAX << (p + 1) };
    let (high, mh) = (a & above, m & above);
    let next = (high | !mh).wrapping_add(1) & mh;
    (next != 0).then_some(next)
}

#[derive(Copy, Clone, PartialEq, Eq, Hash)]
enum BinOp {
    And,
    Or,
    /// The left side unless it is [`Terminal::NoMatch`].
    First,
}

/// The diagrams of one architecture's syscalls.
pub struct Diagrams {
    vars: Vec<Var>,
    rank: FxHashMap<Var, u16>,
    nodes: PrimaryMap<Node, NodeData>,
    unique: FxHashMap<NodeData, Node>,
    conds: FxHashMap<CondId, Node>,
}

/// The variables a condition reads, when the masked word can be other than 0.
fn cond_vars(data: &CondData) -> Vec<Var> {
    let (arg, keep) = match data {
        CondData::Cmp { arg, width, mask, .. } | CondData::In { arg, width, mask, .. } => (*arg, width.mask() & mask),
        _ => return Vec::new(),
    };
    let mut out = Vec::new();
    if keep >> 32 != 0 {
        out.push(Var { offset: off_arg_hi(arg), mask: (keep >> 32) as u32 });
    }
    if keep as u32 != 0 {
        out.push(Var { offset: off_arg_lo(arg), mask: keep as u32 });
    }
    out
}

impl Diagrams {
    /// An empty manager for the conditions of `target`: the variable order is fixed from
    /// every variable they read.
    pub fn new(target: &ArchPolicy) -> Diagrams {
        let mut vars: Vec<Var> = target.conds.values().flat_map(cond_vars).collect();
        // by argument, high half first, unmasked first, then more mask bits first
        vars.sort_by_key(|v| {
            let arg = (v.offset - off_arg_lo(0)) / 8;
            let low_half = v.offset % 8 == 0;
            (arg, low_half, v.mask != u32::MAX, std::cmp::Reverse(v.mask.count_ones()), v.mask)
        });
        vars.dedup();
        let rank = vars.iter().enumerate().map(|(i, v)| (*v, i as u16)).collect();
        Diagrams { vars, rank, nodes: PrimaryMap::new(), unique: FxHashMap::default(), conds: FxHashMap::default() }
    }

    /// The node's data.
    pub fn data(&self, n: Node) -> &NodeData {
        &self.nodes[n]
    }

    /// The variable of a rank.
    pub fn var(&self, rank: u16) -> Var {
        self.vars[rank as usize]
    }

    fn intern(&mut self, data: NodeData) -> Node {
        if let Some(&n) = self.unique.get(&data) {
            return n;
        }
        let n = self.nodes.push(data.clone());
        self.unique.insert(data, n);
        n
    }

    /// The terminal `t`.
    pub fn leaf(&mut self, t: Terminal) -> Node {
        self.intern(NodeData::Leaf(t))
    }

    fn terminal(&self, n: Node) -> Option<Terminal> {
        match self.nodes[n] {
            NodeData::Leaf(t) => Some(t),
            NodeData::Test { .. } => None,
        }
    }

    fn rank_of(&self, n: Node) -> u16 {
        match self.nodes[n] {
            NodeData::Leaf(_) => u16::MAX,
            NodeData::Test { var, .. } => var,
        }
    }

    /// The node testing variable `var` with these classes (first value, child), sorted by
    /// first value, the first at 0: normalised as the module docs say.
    fn mk(&mut self, var: u16, edges: &[(u32, Node)]) -> Node {
        let mask = self.vars[var as usize].mask;
        let mut out: Vec<(u32, Node)> = Vec::with_capacity(edges.len());
        for (i, &(start, child)) in edges.iter().enumerate() {
            let end = edges.get(i + 1).map_or(u32::MAX, |e| e.0 - 1);
            let Some(first) = next_feasible(mask, start).filter(|f| *f <= end) else { continue };
            match out.last() {
                Some(&(_, c)) if c == child => {}
                _ => out.push((first, child)),
            }
        }
        match out.as_slice() {
            [] => self.leaf(Terminal::False), // no class at all: cannot happen (0 is feasible)
            [(_, only)] => *only,
            _ => {
                out[0].0 = 0;
                self.intern(NodeData::Test { var, edges: out.into_boxed_slice() })
            }
        }
    }

    /// The classes of `n` at rank `var`: its own if it tests `var`, else one class.
    fn classes_at(&self, n: Node, var: u16) -> Box<[(u32, Node)]> {
        match &self.nodes[n] {
            NodeData::Test { var: v, edges } if *v == var => edges.clone(),
            _ => Box::new([(0, n)]),
        }
    }

    fn apply(&mut self, op: BinOp, a: Node, b: Node, memo: &mut FxHashMap<(Node, Node), Node>) -> Node {
        let (ta, tb) = (self.terminal(a), self.terminal(b));
        match op {
            BinOp::And => match (ta, tb) {
                (Some(Terminal::False), _) | (_, Some(Terminal::False)) => return self.leaf(Terminal::False),
                (Some(Terminal::True), _) => return b,
                (_, Some(Terminal::True)) => return a,
                _ => {}
            },
            BinOp::Or => match (ta, tb) {
                (Some(Terminal::True), _) | (_, Some(Terminal::True)) => return self.leaf(Terminal::True),
                (Some(Terminal::False), _) => return b,
                (_, Some(Terminal::False)) => return a,
                _ => {}
            },
            BinOp::First => match (ta, tb) {
                (Some(Terminal::NoMatch), _) => return b,
                (Some(_), _) | (_, Some(Terminal::NoMatch)) => return a,
                _ => {}
            },
        }
        if a == b && op != BinOp::First {
            return a;
        }
        if let Some(&r) = memo.get(&(a, b)) {
            return r;
        }
        let var = self.rank_of(a).min(self.rank_of(b));
        let (ea, eb) = (self.classes_at(a, var), self.classes_at(b, var));
        let mut edges = Vec::with_capacity(ea.len() + eb.len());
        let (mut i, mut j) = (0, 0);
        let mut start = 0u32;
        loop {
            let child = self.apply(op, ea[i].1, eb[j].1, memo);
            edges.push((start, child));
            let na = ea.get(i + 1).map(|e| e.0);
            let nb = eb.get(j + 1).map(|e| e.0);
            start = match (na, nb) {
                (None, None) => break,
                (Some(x), None) => x,
                (None, Some(y)) => y,
                (Some(x), Some(y)) => x.min(y),
            };
            if na == Some(start) {
                i += 1;
            }
            if nb == Some(start) {
                j += 1;
            }
        }
        let r = self.mk(var, &edges);
        memo.insert((a, b), r);
        r
    }

    fn binary(&mut self, op: BinOp, a: Node, b: Node) -> Node {
        self.apply(op, a, b, &mut FxHashMap::default())
    }

    /// The diagram with each terminal replaced by `f` of it.
    fn map(&mut self, n: Node, f: &dyn Fn(Terminal) -> Terminal) -> Node {
        fn rec(d: &mut Diagrams, n: Node, f: &dyn Fn(Terminal) -> Terminal, memo: &mut FxHashMap<Node, Node>) -> Node {
            if let Some(&r) = memo.get(&n) {
                return r;
            }
            let r = match d.nodes[n].clone() {
                NodeData::Leaf(t) => d.leaf(f(t)),
                NodeData::Test { var, edges } => {
                    let mapped: Vec<(u32, Node)> = edges.iter().map(|&(s, c)| (s, rec(d, c, f, memo))).collect();
                    d.mk(var, &mapped)
                }
            };
            memo.insert(n, r);
            r
        }
        rec(self, n, f, &mut FxHashMap::default())
    }

    /// A node on `var` (or the constant word 0 when `var` is `None`: a mask that keeps no
    /// bit) mapping each listed value to its child and every other value to `other`
    /// (`points` sorted, distinct).
    fn points(&mut self, var: Option<Var>, points: &[(u32, Node)], other: Node) -> Node {
        let Some(var) = var else {
            return points.iter().find(|p| p.0 == 0).map_or(other, |p| p.1);
        };
        let mut edges = Vec::with_capacity(2 * points.len() + 1);
        let mut next = 0u64;
        for &(v, child) in points {
            if u64::from(v) > next {
                edges.push((next as u32, other));
            }
            edges.push((v, child));
            next = u64::from(v) + 1;
        }
        if next <= u64::from(u32::MAX) {
            edges.push((next as u32, other));
        }
        self.mk(self.rank[&var], &edges)
    }

    /// "`var` (or 0, when `None`) is in `lo..=hi`" (nothing when `lo > hi`).
    fn between(&mut self, var: Option<Var>, lo: u32, hi: u32) -> Node {
        let (t, f) = (self.leaf(Terminal::True), self.leaf(Terminal::False));
        if lo > hi {
            return f;
        }
        let Some(var) = var else {
            return if lo == 0 { t } else { f };
        };
        let mut edges = Vec::with_capacity(3);
        if lo > 0 {
            edges.push((0, f));
        }
        edges.push((lo, t));
        if hi < u32::MAX {
            edges.push((hi + 1, f));
        }
        self.mk(self.rank[&var], &edges)
    }

    fn not(&mut self, n: Node) -> Node {
        self.map(n, &|t| match t {
            Terminal::True => Terminal::False,
            Terminal::False => Terminal::True,
            other => other,
        })
    }

    /// The boolean diagram of a condition.
    pub fn cond(&mut self, target: &ArchPolicy, c: CondId) -> Node {
        if let Some(&n) = self.conds.get(&c) {
            return n;
        }
        let n = match &target.conds[c] {
            CondData::And(a, b) => {
                let (a, b) = (self.cond(target, *a), self.cond(target, *b));
                self.binary(BinOp::And, a, b)
            }
            CondData::Or(a, b) => {
                let (a, b) = (self.cond(target, *a), self.cond(target, *b));
                self.binary(BinOp::Or, a, b)
            }
            CondData::Not(a) => {
                let a = self.cond(target, *a);
                self.not(a)
            }
            data @ CondData::Cmp { op, value, .. } => {
                let (hi, lo) = self.halves(data);
                let (vh, vl) = ((value >> 32) as u32, *value as u32);
                let eq = |d: &mut Diagrams| {
                    let (h, l) = (d.between(hi, vh, vh), d.between(lo, vl, vl));
                    d.binary(BinOp::And, h, l)
                };
                // the high half decides unless equal, then the low half
                let greater = |d: &mut Diagrams, or_equal: bool| {
                    let h_gt = if vh == u32::MAX { d.leaf(Terminal::False) } else { d.between(hi, vh + 1, u32::MAX) };
                    let h_eq = d.between(hi, vh, vh);
                    let l = match (or_equal, vl) {
                        (true, _) => d.between(lo, vl, u32::MAX),
                        (false, u32::MAX) => d.leaf(Terminal::False),
                        (false, _) => d.between(lo, vl + 1, u32::MAX),
                    };
                    let tie = d.binary(BinOp::And, h_eq, l);
                    d.binary(BinOp::Or, h_gt, tie)
                };
                match op {
                    CmpOp::Eq => eq(self),
                    CmpOp::Ne => {
                        let e = eq(self);
                        self.not(e)
                    }
                    CmpOp::Gt => greater(self, false),
                    CmpOp::Ge => greater(self, true),
                    CmpOp::Lt => {
                        let g = greater(self, true);
                        self.not(g)
                    }
                    CmpOp::Le => {
                        let g = greater(self, false);
                        self.not(g)
                    }
                }
            }
            data @ CondData::In { width, mask, negated, values, .. } => {
                let keep = width.mask() & mask;
                let (hi, lo) = self.halves(data);
                let (t, f) = (self.leaf(Terminal::True), self.leaf(Terminal::False));
                // members the masked argument can equal, by high half
                let mut members: Vec<u64> = values.iter().copied().filter(|v| v & !keep == 0).collect();
                members.sort_unstable();
                members.dedup();
                let mut by_high: Vec<(u32, Node)> = Vec::new();
                let mut i = 0;
                while i < members.len() {
                    let h = (members[i] >> 32) as u32;
                    let j = i + members[i..].partition_point(|v| (v >> 32) as u32 == h);
                    let lows: Vec<(u32, Node)> = members[i..j].iter().map(|v| (*v as u32, t)).collect();
                    let low = self.points(lo, &lows, f);
                    by_high.push((h, low));
                    i = j;
                }
                let set = self.points(hi, &by_high, f);
                if *negated {
                    self.not(set)
                } else {
                    set
                }
            }
        };
        self.conds.insert(c, n);
        n
    }

    /// The high and low variables of a comparison (`None` where the mask keeps no bit).
    fn halves(&self, data: &CondData) -> (Option<Var>, Option<Var>) {
        let mut hi = None;
        let mut lo = None;
        for v in cond_vars(data) {
            if v.offset % 8 == 0 {
                lo = Some(v);
            } else {
                hi = Some(v);
            }
        }
        (hi, lo)
    }

    /// The decision of a syscall whose rules are `entries`: the first rule whose condition
    /// holds decides, else `default` (a return value).
    pub fn syscall(&mut self, policy: &Policy, target: &ArchPolicy, entries: &[Entry], default: u32) -> Node {
        let mut parts = Vec::with_capacity(entries.len());
        for e in entries {
            let action = policy.rules[e.rule].action.ret_value();
            let Some(c) = e.cond else {
                parts.push(self.leaf(Terminal::Ret(action)));
                break;
            };
            let holds = self.cond(target, c);
            parts.push(self.map(holds, &|t| match t {
                Terminal::True => Terminal::Ret(action),
                _ => Terminal::NoMatch,
            }));
        }
        let first = self.first_of(&parts);
        self.map(first, &|t| match t {
            Terminal::NoMatch => Terminal::Ret(default),
            other => other,
        })
    }

    /// The first-match combination of `parts`, by halving.
    fn first_of(&mut self, parts: &[Node]) -> Node {
        match parts {
            [] => self.leaf(Terminal::NoMatch),
            [one] => *one,
            _ => {
                let (a, b) = parts.split_at(parts.len() / 2);
                let (a, b) = (self.first_of(a), self.first_of(b));
                self.binary(BinOp::First, a, b)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_feasible_is_the_smallest_submask_at_or_above() {
        for m in 0u32..256 {
            for a in 0u32..300 {
                let want = (a..256).find(|x| x & !m == 0);
                assert_eq!(next_feasible(m, a), want, "m {m:#x} a {a:#x}");
            }
        }
        for (m, a, want) in [
            (0x8000_0001, 2, Some(0x8000_0000)),
            (u32::MAX, 0x1234_5678, Some(0x1234_5678)),
            (0x0f0f, 0x0f10, None),
            (0xa5, 0x11, Some(0x20)),
            (0xffff_0000, 1, Some(0x1_0000)),
            (0x7fff_ffff, 0x8000_0000, None),
        ] {
            assert_eq!(next_feasible(m, a), want, "m {m:#x} a {a:#x}");
        }
    }
}
