//! The syscall-number space as ranges with the same decision (kafel's normalised table), and
//! the weighted optimal binary search tree over them: the exact dynamic program for optimal
//! alphabetic trees, with Knuth's bound on the roots (O(n²)).

/// What a range of syscall numbers leads to.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Leaf {
    /// A constant decision: the return value.
    Ret(u32),
    /// A decision that depends on the arguments of this syscall number.
    Code(u32),
}

/// Numbers `lo..=hi` with one leaf.
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct Range {
    /// First number.
    pub lo: u32,
    /// Last number.
    pub hi: u32,
    /// The decision.
    pub leaf: Leaf,
    /// How often calls land here (profile weight).
    pub weight: f64,
}

/// Tiles `[0, u32::MAX]` from the per-number leaves (sorted by number, numbers not listed
/// take `gap`), merging neighbours with the same constant decision.
pub fn ranges(points: &[(u32, Leaf, f64)], gap: Leaf, gap_weight: f64) -> Vec<Range> {
    let mut out: Vec<Range> = Vec::new();
    let mut push = |r: Range| match out.last_mut() {
        Some(last) if last.leaf == r.leaf && matches!(r.leaf, Leaf::Ret(_)) && last.hi.checked_add(1) == Some(r.lo) => {
            last.hi = r.hi;
            last.weight += r.weight;
        }
        _ => out.push(r),
    };
    let mut next = 0u64;
    for &(nr, leaf, weight) in points {
        if (nr as u64) > next {
            push(Range { lo: next as u32, hi: nr - 1, leaf: gap, weight: gap_weight });
        }
        push(Range { lo: nr, hi: nr, leaf, weight });
        next = nr as u64 + 1;
    }
    if next <= u32::MAX as u64 {
        push(Range { lo: next as u32, hi: u32::MAX, leaf: gap, weight: gap_weight });
    }
    out
}

/// Gives the numbers `lo..=hi` the constant decision `leaf` (they must hold no
/// argument-dependent leaf), splitting and re-merging ranges.
pub fn paint(ranges: Vec<Range>, lo: u32, hi: u32, leaf: Leaf, weight: f64) -> Vec<Range> {
    let mut pieces = Vec::with_capacity(ranges.len() + 2);
    for r in ranges {
        if r.hi < lo || r.lo > hi {
            pieces.push(r);
            continue;
        }
        debug_assert!(matches!(r.leaf, Leaf::Ret(_)), "painting over argument-dependent numbers");
        if r.lo < lo {
            pieces.push(Range { lo: r.lo, hi: lo - 1, ..r });
        }
        pieces.push(Range { lo: r.lo.max(lo), hi: r.hi.min(hi), leaf, weight });
        if r.hi > hi {
            pieces.push(Range { lo: hi + 1, hi: r.hi, leaf: r.leaf, weight });
        }
    }
    let mut out: Vec<Range> = Vec::with_capacity(pieces.len());
    for r in pieces {
        match out.last_mut() {
            Some(last) if last.leaf == r.leaf && matches!(r.leaf, Leaf::Ret(_)) => {
                last.hi = r.hi;
                last.weight += r.weight;
            }
            _ => out.push(r),
        }
    }
    out
}

/// The optimal tree: `root[i][j]` is the index `k` such that ranges `i..=k` go left and
/// `k+1..=j` right. Returns (roots, expected compares per call) for weights `w`.
#[derive(Debug)]
pub struct Tree {
    n: usize,
    root: Vec<u32>,
    /// Weighted sum of compares over all ranges (divide by total weight for the mean).
    pub cost: f64,
}

impl Tree {
    /// Builds the optimal tree for these weights. Ties go to the most balanced split.
    pub fn optimal(weights: &[f64]) -> Tree {
        let n = weights.len();
        let mut prefix = vec![0.0; n + 1];
        for i in 0..n {
            prefix[i + 1] = prefix[i] + weights[i];
        }
        let idx = |i: usize, j: usize| i * n + j;
        // costs closer than this are ties, resolved toward the balanced split
        let tie = 1e-9 * prefix[n];
        let mut cost = vec![0.0f64; n * n];
        let mut root = vec![0u32; n * n];
        for i in 0..n.saturating_sub(1) {
            root[idx(i, i + 1)] = i as u32;
            cost[idx(i, i + 1)] = weights[i] + weights[i + 1];
        }
        for len in 3..=n {
            for i in 0..=n - len {
                let j = i + len - 1;
                let (lo, hi) = (root[idx(i, j - 1)] as usize, (root[idx(i + 1, j)] as usize).min(j - 1));
                let mid = (i + j) as f64 / 2.0;
                let mut best = (f64::INFINITY, f64::INFINITY, lo);
                for k in lo..=hi.max(lo) {
                    let c = cost[idx(i, k)] + cost[idx(k + 1, j)];
                    let balance = (k as f64 + 0.5 - mid).abs();
                    if c < best.0 - tie || ((c - best.0).abs() <= tie && balance < best.1) {
                        best = (c, balance, k);
                    }
                }
                root[idx(i, j)] = best.2 as u32;
                cost[idx(i, j)] = best.0 + prefix[j + 1] - prefix[i];
            }
        }
        let total = if n > 1 { cost[idx(0, n - 1)] } else { 0.0 };
        Tree { n, root, cost: total }
    }

    /// Where the ranges `i..=j` (i < j) split.
    pub fn split(&self, i: usize, j: usize) -> usize {
        self.root[i * self.n + j] as usize
    }
}

/// Splits off the hot single numbers worth testing with `jeq` before the tree (heaviest
/// first), as long as each lowers the expected number of compares: a `jeq` isolates one
/// number with one compare where a range tree needs two bounds, and once a number is tested
/// its slot can merge with a neighbour. Returns the hot ranges and the ranges left for the
/// tree (still tiling the number space).
pub fn hot_first(mut ranges: Vec<Range>) -> (Vec<Range>, Vec<Range>) {
    const MAX_HOT: usize = 8;
    let tree_cost = |r: &[Range]| Tree::optimal(&r.iter().map(|r| r.weight).collect::<Vec<_>>()).cost;
    // With hot numbers H tested first and the rest R in a tree, the expected compares are
    // sum(w_h * position) + |H| * W(R) + T(R). Moving k from R to the end of H changes this by
    // W(R) + T(R without k) - T(R): worth it when the tree gets cheaper by more than one
    // compare for every call still going to the tree.
    let mut hot: Vec<Range> = Vec::new();
    while hot.len() < MAX_HOT {
        let candidates = (0..ranges.len()).filter(|&k| ranges[k].lo == ranges[k].hi && ranges[k].weight > 0.0);
        let Some(k) = candidates.max_by(|&a, &b| ranges[a].weight.total_cmp(&ranges[b].weight)) else { break };
        let rest = without(&ranges, k);
        let w_r: f64 = ranges.iter().map(|r| r.weight).sum();
        if w_r + tree_cost(&rest) >= tree_cost(&ranges) - 1e-9 * w_r {
            break;
        }
        hot.push(ranges[k]);
        ranges = rest;
    }
    (hot, ranges)
}

/// The ranges with number `ranges[k]` (a single number) given to its left neighbour and
/// merged where neighbours now hold the same constant leaf.
fn without(ranges: &[Range], k: usize) -> Vec<Range> {
    let mut out: Vec<Range> = Vec::with_capacity(ranges.len());
    for (i, r) in ranges.iter().enumerate() {
        if i == k {
            match out.last_mut() {
                Some(prev) => prev.hi = r.hi,
                None => continue, // the first range: the next one takes it below
            }
            continue;
        }
        let mut r = *r;
        if i == k + 1 && k == 0 {
            r.lo = ranges[k].lo;
        }
        match out.last_mut() {
            Some(prev) if prev.leaf == r.leaf && matches!(r.leaf, Leaf::Ret(_)) => {
                prev.hi = r.hi;
                prev.weight += r.weight;
            }
            _ => out.push(r),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The exact cost by trying every tree (small n).
    fn brute(w: &[f64]) -> f64 {
        if w.len() <= 1 {
            return 0.0;
        }
        let total: f64 = w.iter().sum();
        (0..w.len() - 1).map(|k| brute(&w[..=k]) + brute(&w[k + 1..])).fold(f64::INFINITY, f64::min) + total
    }

    #[test]
    fn knuth_bounded_dp_is_exact() {
        let cases: [&[f64]; 4] = [
            &[1.0, 2.0, 3.0, 4.0, 5.0],
            &[100.0, 1.0, 1.0, 1.0, 1.0, 1.0, 50.0],
            &[0.0, 0.0, 7.0, 0.0, 0.0, 0.0],
            &[3.0, 1.0, 4.0, 1.0, 5.0, 9.0, 2.0, 6.0],
        ];
        for w in cases {
            let t = Tree::optimal(w);
            assert!((t.cost - brute(w)).abs() < 1e-9, "{w:?}: {} vs {}", t.cost, brute(w));
        }
    }

    #[test]
    fn ranges_tile_the_number_space_and_merge() {
        let r =
            ranges(&[(0, Leaf::Ret(1), 1.0), (1, Leaf::Ret(1), 1.0), (5, Leaf::Code(5), 1.0), (7, Leaf::Ret(2), 1.0)], Leaf::Ret(2), 0.0);
        let spans: Vec<(u32, u32)> = r.iter().map(|r| (r.lo, r.hi)).collect();
        assert_eq!(spans, [(0, 1), (2, 4), (5, 5), (6, u32::MAX)]);
    }
}
