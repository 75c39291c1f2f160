//! Reduced, ordered multi-terminal binary decision diagrams over the 512 input bits a
//! seccomp filter can read, with terminals that are 64-bit values (a return value, a pair of
//! them, or 0/1 for a boolean function).
//!
//! Canonical: for one variable order, two functions are equal exactly when their nodes are
//! the same (the unique table never builds a node twice and never builds one whose children
//! are equal). That is what makes [`super`]'s answers complete: equality of the two deciders
//! is a comparison of two node numbers, and a difference is a path to a terminal.

use rustc_hash::FxHashMap;

/// A node: an index into the manager.
pub type NodeId = u32;

/// The constant false (terminal 0).
pub const FALSE: NodeId = 0;
/// The constant true (terminal 1).
pub const TRUE: NodeId = 1;

/// The level of terminals (below every variable).
pub const TERMINAL: u16 = u16::MAX;

/// Variables, in order: `seccomp_data.arch` (32 bits, most significant first), `nr`, then
/// each argument as a 64-bit value (most significant bit first), then the instruction
/// pointer.
pub const VARS: u16 = 512;

#[derive(Copy, Clone, PartialEq, Eq, Hash)]
struct Node {
    var: u16,
    lo: u32,
    hi: u32,
}

/// The node budget was spent: the question is too big to answer here.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct OverBudget;

/// What a diagram operation returns.
pub type Dd = Result<NodeId, OverBudget>;

/// The manager: nodes, terminals, and the tables that keep them unique and the operations
/// memoized.
pub struct Manager {
    nodes: Vec<Node>,
    values: Vec<u64>,
    unique: FxHashMap<Node, NodeId>,
    terminals: FxHashMap<u64, NodeId>,
    ite_memo: FxHashMap<(NodeId, NodeId, NodeId), NodeId>,
    budget: usize,
}

impl Manager {
    /// A manager that builds at most `budget` nodes.
    pub fn new(budget: usize) -> Manager {
        let mut m = Manager {
            nodes: Vec::new(),
            values: Vec::new(),
            unique: FxHashMap::default(),
            terminals: FxHashMap::default(),
            ite_memo: FxHashMap::default(),
            budget,
        };
        let (f, t) = (m.terminal(0), m.terminal(1));
        debug_assert!(f == FALSE && t == TRUE);
        m
    }

    /// Nodes built so far.
    pub fn size(&self) -> usize {
        self.nodes.len()
    }

    /// The terminal holding `value`.
    pub fn terminal(&mut self, value: u64) -> NodeId {
        if let Some(&id) = self.terminals.get(&value) {
            return id;
        }
        let id = self.nodes.len() as NodeId;
        let slot = self.values.len() as u32;
        self.values.push(value);
        self.nodes.push(Node { var: TERMINAL, lo: slot, hi: slot });
        self.terminals.insert(value, id);
        id
    }

    /// The value of a terminal, `None` for an inner node.
    pub fn value(&self, n: NodeId) -> Option<u64> {
        let node = self.nodes[n as usize];
        (node.var == TERMINAL).then(|| self.values[node.lo as usize])
    }

    /// The variable a node tests ([`TERMINAL`] for a terminal).
    pub fn var(&self, n: NodeId) -> u16 {
        self.nodes[n as usize].var
    }

    /// The children (variable 0, variable 1) of an inner node.
    pub fn children(&self, n: NodeId) -> (NodeId, NodeId) {
        let node = self.nodes[n as usize];
        (node.lo, node.hi)
    }

    /// The node testing `var`: `lo` when it is 0, `hi` when 1.
    pub fn mk(&mut self, var: u16, lo: NodeId, hi: NodeId) -> Dd {
        if lo == hi {
            return Ok(lo);
        }
        let node = Node { var, lo, hi };
        if let Some(&id) = self.unique.get(&node) {
            return Ok(id);
        }
        if self.nodes.len() >= self.budget {
            return Err(OverBudget);
        }
        let id = self.nodes.len() as NodeId;
        self.nodes.push(node);
        self.unique.insert(node, id);
        Ok(id)
    }

    /// The boolean function "variable `var` is 1".
    pub fn literal(&mut self, var: u16) -> Dd {
        self.mk(var, FALSE, TRUE)
    }

    fn cofactors(&self, n: NodeId, var: u16) -> (NodeId, NodeId) {
        let node = self.nodes[n as usize];
        if node.var == var {
            (node.lo, node.hi)
        } else {
            (n, n)
        }
    }

    /// If-then-else: `g` where the boolean `f` holds, `h` elsewhere (`g`, `h` any diagrams).
    pub fn ite(&mut self, f: NodeId, g: NodeId, h: NodeId) -> Dd {
        if f == TRUE || g == h {
            return Ok(g);
        }
        if f == FALSE {
            return Ok(h);
        }
        if g == TRUE && h == FALSE {
            return Ok(f);
        }
        if let Some(&r) = self.ite_memo.get(&(f, g, h)) {
            return Ok(r);
        }
        let v = self.var(f).min(self.var(g)).min(self.var(h));
        let (f0, f1) = self.cofactors(f, v);
        let (g0, g1) = self.cofactors(g, v);
        let (h0, h1) = self.cofactors(h, v);
        let lo = self.ite(f0, g0, h0)?;
        let hi = self.ite(f1, g1, h1)?;
        let r = self.mk(v, lo, hi)?;
        if self.ite_memo.len() > 1 << 22 {
            self.ite_memo.clear();
        }
        self.ite_memo.insert((f, g, h), r);
        Ok(r)
    }

    /// `a && b`.
    pub fn and(&mut self, a: NodeId, b: NodeId) -> Dd {
        self.ite(a, b, FALSE)
    }

    /// `a || b`.
    pub fn or(&mut self, a: NodeId, b: NodeId) -> Dd {
        self.ite(a, TRUE, b)
    }

    /// `!a`.
    pub fn not(&mut self, a: NodeId) -> Dd {
        self.ite(a, FALSE, TRUE)
    }

    /// `a != b` (booleans).
    pub fn xor(&mut self, a: NodeId, b: NodeId) -> Dd {
        let nb = self.not(b)?;
        self.ite(a, nb, b)
    }

    /// Combines two diagrams terminal by terminal.
    pub fn apply(&mut self, a: NodeId, b: NodeId, op: &dyn Fn(u64, u64) -> u64) -> Dd {
        let mut memo = FxHashMap::default();
        self.apply_rec(a, b, op, &mut memo)
    }

    fn apply_rec(&mut self, a: NodeId, b: NodeId, op: &dyn Fn(u64, u64) -> u64, memo: &mut FxHashMap<(NodeId, NodeId), NodeId>) -> Dd {
        if let (Some(x), Some(y)) = (self.value(a), self.value(b)) {
            let v = op(x, y);
            return Ok(self.terminal(v));
        }
        if let Some(&r) = memo.get(&(a, b)) {
            return Ok(r);
        }
        let v = self.var(a).min(self.var(b));
        let (a0, a1) = self.cofactors(a, v);
        let (b0, b1) = self.cofactors(b, v);
        let lo = self.apply_rec(a0, b0, op, memo)?;
        let hi = self.apply_rec(a1, b1, op, memo)?;
        let r = self.mk(v, lo, hi)?;
        memo.insert((a, b), r);
        Ok(r)
    }

    /// The boolean function "`n` is not FALSE for some values of the variables from
    /// `level` on": a function of the variables before `level`.
    pub fn exists_from(&mut self, n: NodeId, level: u16) -> Dd {
        let mut memo = FxHashMap::default();
        self.exists_rec(n, level, &mut memo)
    }

    fn exists_rec(&mut self, n: NodeId, level: u16, memo: &mut FxHashMap<NodeId, NodeId>) -> Dd {
        let var = self.var(n);
        if var >= level {
            return Ok(if n == FALSE { FALSE } else { TRUE });
        }
        if let Some(&r) = memo.get(&n) {
            return Ok(r);
        }
        let (lo, hi) = self.children(n);
        let (lo, hi) = (self.exists_rec(lo, level, memo)?, self.exists_rec(hi, level, memo)?);
        let r = self.mk(var, lo, hi)?;
        memo.insert(n, r);
        Ok(r)
    }

    /// The diagram with variables `first..first + bits.len()` fixed to `bits`
    /// (`bits[0]` for `first`).
    pub fn restrict(&mut self, n: NodeId, first: u16, bits: &[bool]) -> Dd {
        let mut memo = FxHashMap::default();
        self.restrict_rec(n, first, bits, &mut memo)
    }

    fn restrict_rec(&mut self, n: NodeId, first: u16, bits: &[bool], memo: &mut FxHashMap<NodeId, NodeId>) -> Dd {
        let var = self.var(n);
        if var == TERMINAL || var >= first + bits.len() as u16 {
            return Ok(n);
        }
        if let Some(&r) = memo.get(&n) {
            return Ok(r);
        }
        let (lo, hi) = self.children(n);
        let r = if var >= first {
            let child = if bits[(var - first) as usize] { hi } else { lo };
            self.restrict_rec(child, first, bits, memo)?
        } else {
            let lo = self.restrict_rec(lo, first, bits, memo)?;
            let hi = self.restrict_rec(hi, first, bits, memo)?;
            self.mk(var, lo, hi)?
        };
        memo.insert(n, r);
        Ok(r)
    }

    /// A path from `n` to a terminal whose value satisfies `wanted`, as the variables it
    /// fixes (`(var, value)`, in order); it takes the 0 branch when both lead to one, so the
    /// values it leaves free and the ones it picks are as small as can be. `None` when no
    /// terminal of `n` is wanted.
    pub fn pick(&self, n: NodeId, wanted: &dyn Fn(u64) -> bool) -> Option<(Vec<(u16, bool)>, u64)> {
        let mut memo = FxHashMap::default();
        if !self.reaches(n, wanted, &mut memo) {
            return None;
        }
        let mut path = Vec::new();
        let mut at = n;
        loop {
            if let Some(v) = self.value(at) {
                return Some((path, v));
            }
            let (lo, hi) = self.children(at);
            let var = self.var(at);
            if self.reaches(lo, wanted, &mut memo) {
                path.push((var, false));
                at = lo;
            } else {
                path.push((var, true));
                at = hi;
            }
        }
    }

    /// Whether some terminal below `n` is wanted.
    pub fn reaches(&self, n: NodeId, wanted: &dyn Fn(u64) -> bool, memo: &mut FxHashMap<NodeId, bool>) -> bool {
        if let Some(v) = self.value(n) {
            return wanted(v);
        }
        if let Some(&r) = memo.get(&n) {
            return r;
        }
        let (lo, hi) = self.children(n);
        let r = self.reaches(lo, wanted, memo) || self.reaches(hi, wanted, memo);
        memo.insert(n, r);
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_and_boolean_laws() {
        let mut m = Manager::new(1 << 16);
        let (a, b) = (m.literal(3).expect("within budget"), m.literal(7).expect("within budget"));
        let ab = m.and(a, b).expect("within budget");
        let ba = m.and(b, a).expect("within budget");
        assert_eq!(ab, ba, "the same function is the same node");
        let na = m.not(a).expect("within budget");
        let nb = m.not(b).expect("within budget");
        let or = m.or(na, nb).expect("within budget");
        let demorgan = m.not(or).expect("within budget");
        assert_eq!(demorgan, ab);
        let x = m.xor(a, a).expect("within budget");
        assert_eq!(x, FALSE);
        let some = m.exists_from(ab, 5).expect("within budget");
        assert_eq!(some, a, "b quantified away");
        let r = m.restrict(ab, 3, &[true]).expect("within budget");
        assert_eq!(r, b);
        let (path, v) = m.pick(ab, &|v| v == 1).expect("within budget");
        assert_eq!((path, v), (vec![(3, true), (7, true)], 1));
    }

    #[test]
    fn the_budget_is_kept() {
        let mut m = Manager::new(10);
        let mut acc = TRUE;
        let mut failed = false;
        for v in 0..20 {
            match m.literal(v).and_then(|l| m.and(acc, l)) {
                Ok(n) => acc = n,
                Err(OverBudget) => {
                    failed = true;
                    break;
                }
            }
        }
        assert!(failed && m.size() <= 10);
    }
}
