//! The search over the classes of one node ([`super::diagram`]): which of its value ranges
//! the word in the accumulator falls in, with the fewest expected compares the size allows.
//!
//! The classes that do not lead to the *background* (the child most classes lead to) are the
//! items. Items are cut into groups of at most `k` consecutive ones; a binary search over the
//! groups (the optimal alphabetic tree for their weights, as for syscall numbers, or a
//! weight-balanced one past [`OPTIMAL_MAX`] groups) finds the group, and a chain tests its
//! items, heaviest first, falling to the background. An item costs one compare (`jeq` for a
//! single value, `jgt`/`jge` for a range at the edge of its group) or two (a range inside
//! it); a tree level costs one `jge`. So `k = 1` is a full binary search (about two
//! instructions per item, `log₂ n` deep) and one group is a plain chain (one instruction per
//! item, `n / 2` deep on average): [`ladder`] gives the layouts in between, from the one with
//! the fewest expected compares to the smallest, and the size budget picks among them.
//! Each layout also comes with the background values below the first item cut off as a
//! group of their own, reached by the tree's first compare with no chain (one compare for
//! zero and the small values, where most arguments are).

use super::asm::Label;
use super::tree::Tree;
use super::Emitter;
use crate::bpf::{BPF_JEQ, BPF_JGE, BPF_JGT};

/// Past this many groups the tree over them is weight-balanced rather than optimal (the
/// optimal one takes quadratic time).
pub const OPTIMAL_MAX: usize = 256;

/// A class: the values from `start` up to the next class's start lead to `target`.
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct Class {
    /// Its first value.
    pub start: u32,
    /// Where it leads (an index; equal indices are the same place).
    pub target: usize,
    /// How often calls fall in it.
    pub weight: f64,
}

/// Consecutive items tested by one chain.
#[derive(Clone, Debug)]
struct Group {
    /// Its first value (the tree's pivot).
    lo: u32,
    /// Its last value.
    hi: u32,
    /// Class indices, in the order tested.
    items: Vec<usize>,
    /// Whether some of its values go to the background.
    has_background: bool,
    weight: f64,
}

/// A layout of the search over a node's classes.
#[derive(Clone, Debug)]
pub struct Plan {
    background: usize,
    groups: Vec<Group>,
    splits: Splits,
    /// Expected compares, weighted (the sum over classes of weight × compares).
    pub cost: f64,
    /// Instructions.
    pub size: usize,
}

#[derive(Clone, Debug)]
enum Splits {
    Optimal(std::rc::Rc<Tree>),
    Balanced(Vec<f64>),
}

impl Splits {
    fn new(weights: &[f64]) -> Splits {
        if weights.len() <= OPTIMAL_MAX {
            return Splits::Optimal(std::rc::Rc::new(Tree::optimal(weights)));
        }
        let mut prefix = vec![0.0];
        for w in weights {
            prefix.push(prefix[prefix.len() - 1] + w);
        }
        Splits::Balanced(prefix)
    }

    /// Where groups `i..=j` (i < j) split: `i..=k` left, `k+1..=j` right.
    fn split(&self, i: usize, j: usize) -> usize {
        match self {
            Splits::Optimal(t) => t.split(i, j),
            Splits::Balanced(prefix) => {
                // the k whose left weight is nearest half, ties to the middle
                let half = (prefix[i] + prefix[j + 1]) / 2.0;
                let mid = (i + j) / 2;
                // the first k in i..j whose left side reaches half
                let (mut lo, mut hi) = (i, j);
                while lo < hi {
                    let m = (lo + hi) / 2;
                    if prefix[m + 1] < half {
                        lo = m + 1;
                    } else {
                        hi = m;
                    }
                }
                let at = lo;
                let candidates = [at.saturating_sub(1).max(i), at.min(j - 1), mid];
                let score = |k: usize| ((prefix[k + 1] - half).abs(), k.abs_diff(mid));
                candidates.into_iter().min_by(|a, b| score(*a).partial_cmp(&score(*b)).unwrap_or(std::cmp::Ordering::Equal)).unwrap_or(mid)
            }
        }
    }

    /// Weighted compares of the tree over groups `i..=j`.
    fn cost(&self, weights: &[f64], i: usize, j: usize) -> f64 {
        if i >= j {
            return 0.0;
        }
        if let Splits::Optimal(t) = self {
            if i == 0 && j + 1 == weights.len() {
                return t.cost;
            }
        }
        let k = self.split(i, j);
        weights[i..=j].iter().sum::<f64>() + self.cost(weights, i, k) + self.cost(weights, k + 1, j)
    }
}

/// The background: the place most classes lead to (ties: the heaviest, then the first).
fn background(classes: &[Class]) -> usize {
    let mut count: std::collections::BTreeMap<usize, (usize, f64, std::cmp::Reverse<usize>)> = std::collections::BTreeMap::new();
    for (i, c) in classes.iter().enumerate() {
        let e = count.entry(c.target).or_insert((0, 0.0, std::cmp::Reverse(i)));
        e.0 += 1;
        e.1 += c.weight;
    }
    count
        .into_iter()
        .max_by(|a, b| (a.1 .0, a.1 .1, a.1 .2).partial_cmp(&(b.1 .0, b.1 .1, b.1 .2)).unwrap_or(std::cmp::Ordering::Equal))
        .map_or(0, |e| e.0)
}

/// The last value of class `i`.
fn end(classes: &[Class], i: usize) -> u32 {
    classes.get(i + 1).map_or(u32::MAX, |c| c.start - 1)
}

/// Compares an item costs in its group.
fn item_size(classes: &[Class], g: &Group, i: usize) -> usize {
    let (a, b) = (classes[i].start, end(classes, i));
    if a == b || a == g.lo || b == g.hi {
        1
    } else {
        2
    }
}

/// The layout with at most `per_group` items per chain; with `lead`, the background values
/// below the first item form a group of their own (no chain: the tree sends them straight to
/// the background).
pub fn plan(classes: &[Class], per_group: usize, lead: bool) -> Plan {
    let background = background(classes);
    let items: Vec<usize> = (0..classes.len()).filter(|&i| classes[i].target != background).collect();
    let mut groups: Vec<Group> = Vec::new();
    if lead && items.first().is_some_and(|&i| i > 0) {
        groups.push(Group { lo: 0, hi: u32::MAX, items: Vec::new(), has_background: true, weight: 0.0 });
    }
    for chunk in items.chunks(per_group.max(1)) {
        let first = chunk[0];
        let lo = if groups.is_empty() { 0 } else { classes[first].start };
        if let Some(prev) = groups.last_mut() {
            prev.hi = lo - 1;
        }
        groups.push(Group { lo, hi: u32::MAX, items: chunk.to_vec(), has_background: false, weight: 0.0 });
    }
    // each group's weight and whether background values fall in it
    let mut g = 0;
    for c in classes {
        while g + 1 < groups.len() && c.start >= groups[g + 1].lo {
            g += 1;
        }
        groups[g].weight += c.weight;
        if c.target == background {
            groups[g].has_background = true;
        }
    }
    let mut cost = 0.0;
    let mut size = groups.len().saturating_sub(1);
    for group in &mut groups {
        // heaviest first, then by value
        group.items.sort_by(|&a, &b| classes[b].weight.total_cmp(&classes[a].weight).then(a.cmp(&b)));
        let mut spent = 0.0;
        let mut chain_weight = 0.0;
        for (n, &i) in group.items.iter().enumerate() {
            let last_implied = n + 1 == group.items.len() && !group.has_background;
            let s = if last_implied { 0 } else { item_size(classes, group, i) };
            spent += s as f64;
            size += s;
            cost += classes[i].weight * spent;
            chain_weight += classes[i].weight;
        }
        cost += (group.weight - chain_weight) * spent;
    }
    let weights: Vec<f64> = groups.iter().map(|g| g.weight).collect();
    let splits = Splits::new(&weights);
    cost += splits.cost(&weights, 0, groups.len() - 1);
    Plan { background, groups, splits, cost, size }
}

/// The layouts worth choosing between: the one with the fewest expected compares first,
/// then ever smaller ones, each costing more compares than the one before (`classes` has at
/// least two classes).
pub fn ladder(classes: &[Class]) -> Vec<Plan> {
    const STEPS: [usize; 17] = [1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, usize::MAX];
    let items = {
        let b = background(classes);
        classes.iter().filter(|c| c.target != b).count()
    };
    let mut plans: Vec<Plan> = Vec::new();
    for k in STEPS {
        plans.push(plan(classes, k, false));
        plans.push(plan(classes, k, true));
        if k >= items {
            break;
        }
    }
    // the cheapest, then smaller and smaller layouts (the Pareto front)
    let best = plans.iter().enumerate().min_by(|a, b| a.1.cost.total_cmp(&b.1.cost).then(a.1.size.cmp(&b.1.size))).map_or(0, |(i, _)| i);
    let mut out = vec![plans[best].clone()];
    let mut rest: Vec<Plan> = plans.into_iter().filter(|p| p.size < out[0].size).collect();
    rest.sort_by(|a, b| b.size.cmp(&a.size).then(a.cost.total_cmp(&b.cost)));
    for p in rest {
        let last = &out[out.len() - 1];
        if p.size < last.size {
            if p.cost <= last.cost {
                let n = out.len();
                out[n - 1] = p;
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// Emits the search: the accumulator holds the value; `to[t]` is the label of place `t`.
pub(super) fn emit(e: &mut Emitter, classes: &[Class], plan: &Plan, to: &[Label]) {
    tree(e, classes, plan, to, 0, plan.groups.len() - 1);
}

fn tree(e: &mut Emitter, classes: &[Class], plan: &Plan, to: &[Label], i: usize, j: usize) {
    if i == j {
        return chain(e, classes, plan, to, &plan.groups[i]);
    }
    let k = plan.splits.split(i, j);
    // a side that is one group without items goes straight to the background
    let direct = |a: usize, b: usize| a == b && plan.groups[a].items.is_empty();
    let background = to[plan.background];
    let (lt, rt) = (if direct(i, k) { background } else { e.label() }, if direct(k + 1, j) { background } else { e.label() });
    e.jmp(BPF_JGE, plan.groups[k + 1].lo, rt, lt);
    let left_w: f64 = plan.groups[i..=k].iter().map(|g| g.weight).sum();
    let right_w: f64 = plan.groups[k + 1..=j].iter().map(|g| g.weight).sum();
    // the heavier side with code falls through
    let sides = [(lt, i, k), (rt, k + 1, j)];
    let order = if direct(i, k) || (!direct(k + 1, j) && right_w > left_w) { [sides[1], sides[0]] } else { sides };
    for (label, a, b) in order {
        if !direct(a, b) {
            e.bind(label);
            tree(e, classes, plan, to, a, b);
        }
    }
}

fn chain(e: &mut Emitter, classes: &[Class], plan: &Plan, to: &[Label], g: &Group) {
    let background = to[plan.background];
    if g.items.is_empty() {
        // only when the whole search is this group, which [`plan`] never makes
        e.ja(background);
        return;
    }
    for (n, &i) in g.items.iter().enumerate() {
        let target = to[classes[i].target];
        let last = n + 1 == g.items.len();
        if last && !g.has_background {
            e.ja(target);
            return;
        }
        let miss = if last { background } else { e.label() };
        let (a, b) = (classes[i].start, end(classes, i));
        if a == b {
            e.jmp(BPF_JEQ, a, target, miss);
        } else if a == g.lo {
            e.jmp(BPF_JGT, b, miss, target);
        } else if b == g.hi {
            e.jmp(BPF_JGE, a, target, miss);
        } else {
            let upper = e.label();
            e.jmp(BPF_JGE, a, upper, miss);
            e.bind(upper);
            e.jmp(BPF_JGT, b, miss, target);
        }
        if !last {
            e.bind(miss);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(values: &[u32]) -> Vec<Class> {
        // values → place 1, the rest → place 0
        let mut out = vec![Class { start: 0, target: 0, weight: 1.0 }];
        for &v in values {
            if v == 0 {
                out[0].target = 1;
            } else {
                out.push(Class { start: v, target: 1, weight: 1.0 });
            }
            if v < u32::MAX {
                out.push(Class { start: v + 1, target: 0, weight: 1.0 });
            }
        }
        out
    }

    #[test]
    fn a_chain_is_one_compare_per_value_and_a_tree_about_two() {
        let values: Vec<u32> = (0..100).map(|i| 1000 + 7 * i).collect();
        let classes = set(&values);
        let ladder = ladder(&classes);
        let densest = ladder.last().expect("a layout");
        assert_eq!(densest.size, 100, "one jeq per value");
        let tree = plan(&classes, 1, false);
        assert_eq!(tree.size, 100 + 99);
        // the cheapest is much cheaper than the chain
        assert!(ladder[0].cost * 3.0 < densest.cost, "{} vs {}", ladder[0].cost, densest.cost);
        for w in ladder.windows(2) {
            assert!(w[1].size < w[0].size && w[1].cost > w[0].cost);
        }
    }

    #[test]
    fn heavy_values_below_the_first_item_get_a_group_of_their_own() {
        // socket's families: [0, 37] allowed (place 0), 38 refused, 39 allowed, 40 refused
        let classes = |w0: f64| {
            [(0, 0, w0), (38, 1, 1.0), (39, 0, 1.0), (40, 1, 1.0), (41, 0, 1.0)].map(|(start, target, weight)| Class {
                start,
                target,
                weight,
            })
        };
        let heavy = &ladder(&classes(12.0))[0];
        assert!(heavy.groups[0].items.is_empty() && heavy.groups[0].hi == 37, "{heavy:?}");
        // the values below 38 take the tree's one compare and nothing else
        assert_eq!(heavy.cost, 12.0 + 2.0 + 3.0 + 3.0 + 3.0);
        // evenly weighed, the two-value chain is cheaper
        let even = &ladder(&classes(1.0))[0];
        assert_eq!(even.groups.len(), 1, "{even:?}");
        assert_eq!(even.size, 2);
    }

    #[test]
    fn a_range_at_the_edge_of_its_group_is_one_compare() {
        // [0, 9] → 1, [10, max] → 0: one jgt
        let classes = [Class { start: 0, target: 1, weight: 1.0 }, Class { start: 10, target: 0, weight: 1.0 }];
        assert_eq!(plan(&classes, 1, false).size, 1);
        // a range in the middle: two
        let classes = [
            Class { start: 0, target: 0, weight: 1.0 },
            Class { start: 10, target: 1, weight: 1.0 },
            Class { start: 20, target: 0, weight: 1.0 },
        ];
        assert_eq!(plan(&classes, 1, false).size, 2, "jge 10, then jgt 19");
    }
}
