//! The decision procedure: two deciders — a compiled filter, a resolved policy — compared on
//! **every** input `(arch, nr, instruction_pointer, args[0..6])`, with an answer that is
//! either "equal" or a concrete call on which they differ. No solver is needed and nothing
//! is sampled.
//!
//! Each decider becomes a reduced ordered multi-terminal decision diagram over the 512 bits
//! of `seccomp_data` the kernel can read ([`dd`]): the filter by symbolic execution of the
//! loop-free program, every instruction seccomp accepts handled exactly as the emulator runs
//! it (arithmetic as circuits on symbolic bits); the policy by building
//! [`crate::eval::decide`]'s steps on symbolic bits. Such diagrams are canonical: for a fixed
//! variable order each function has exactly one, so the deciders are equal exactly when the
//! two root nodes are the same node, and where they are not, any path to a terminal where
//! the two differ is a call on which they decide differently. The only way not to answer is
//! the node budget ([`DEFAULT_BUDGET`]): then the result says so, and nothing is claimed.
//! docs/compiler.md ("Proven three ways") gives the argument in full.

mod bpf;
pub mod dd;
mod policy;
pub mod word;

use dd::{Manager, NodeId, OverBudget, FALSE};

use crate::bpf::sim::{check, SeccompData, SimError};
use crate::bpf::Program;
use crate::policy::Policy;

/// Nodes a comparison may build (about 30 bytes each) before it gives up.
pub const DEFAULT_BUDGET: usize = 1 << 23;

/// The answer of [`prove`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Proof {
    /// The filter returns what the policy decides for every input, and reaches `allow`
    /// without reading arguments for every call the policy always allows.
    Proven,
    /// A call on which they differ: (the input, what the filter returns, what the policy
    /// decides).
    Mismatch(SeccompData, u32, u32),
    /// A call the policy always allows whose path in the filter reads more than `arch`
    /// and `nr` (the kernel's action cache could not answer it): `(arch, nr)`.
    NotCacheable(u32, u32),
    /// The kernel would refuse the filter.
    Invalid(SimError),
    /// The node budget ran out before an answer: nothing is claimed.
    OverBudget,
}

/// The input of a path through a diagram: the variables it fixes, the others 0.
pub fn input_of(path: &[(u16, bool)]) -> SeccompData {
    let mut d = SeccompData::default();
    for &(var, one) in path {
        if !one {
            continue;
        }
        let (word, bit) = (var / 32, 31 - u32::from(var % 32));
        match word {
            0 => d.arch |= 1 << bit,
            1 => d.nr |= 1 << bit,
            14 => d.instruction_pointer |= 1 << (32 + bit),
            15 => d.instruction_pointer |= 1 << bit,
            w => {
                let arg = ((w - 2) / 2) as usize;
                let shift = if w % 2 == 0 { 32 + bit } else { bit };
                d.args[arg] |= 1 << shift;
            }
        }
    }
    d
}

/// The value a diagram gives for one input (its terminal on the input's path).
pub fn eval(m: &Manager, node: NodeId, data: &SeccompData) -> u64 {
    let mut n = node;
    loop {
        if let Some(v) = m.value(n) {
            return v;
        }
        let var = m.var(n);
        let (word, bit) = (var / 32, 31 - u32::from(var % 32));
        let offset = match word {
            0 => 4,
            1 => 0,
            14 => 12,
            15 => 8,
            w => 16 + 8 * u32::from((w - 2) / 2) + if w % 2 == 0 { 4 } else { 0 },
        };
        let one = data.word(offset).is_some_and(|w| w >> bit & 1 == 1);
        let (lo, hi) = m.children(n);
        n = if one { hi } else { lo };
    }
}

/// The diagram of a filter the kernel accepts: terminals are return values.
pub fn filter_diagram(m: &mut Manager, program: &Program) -> Result<NodeId, ProveError> {
    check(program).map_err(ProveError::Invalid)?;
    Ok(bpf::execute(m, program)?.result)
}

/// The diagram of a policy: terminals are return values.
pub fn policy_diagram(m: &mut Manager, policy: &Policy) -> Result<NodeId, OverBudget> {
    policy::diagram(m, policy)
}

/// A diagram of the `seccomp_data` word at `offset`: the node of the entry whose key is its
/// value, `default` for other values (`entries` sorted by key).
pub fn word_map(m: &mut Manager, offset: u32, entries: &[(u64, NodeId)], default: NodeId) -> Result<NodeId, OverBudget> {
    policy::value_map(m, &policy::word_vars(offset), entries, default)
}

/// Why a diagram could not be built.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProveError {
    /// The kernel would refuse the filter.
    Invalid(SimError),
    /// The node budget ran out.
    OverBudget,
}

impl From<OverBudget> for ProveError {
    fn from(_: OverBudget) -> ProveError {
        ProveError::OverBudget
    }
}

/// Proves `program` equal to `policy` on every input (see the module docs), within
/// `budget` nodes.
pub fn prove(policy: &Policy, program: &Program, budget: usize) -> Proof {
    if let Err(e) = check(program) {
        return Proof::Invalid(e);
    }
    let mut m = Manager::new(budget);
    match prove_in(&mut m, policy, program) {
        Ok(p) => p,
        Err(OverBudget) => Proof::OverBudget,
    }
}

fn prove_in(m: &mut Manager, policy: &Policy, program: &Program) -> Result<Proof, OverBudget> {
    let filter = bpf::execute(m, program)?;
    let source = policy::diagram(m, policy)?;
    if filter.result != source {
        const SAME: u64 = u64::MAX;
        let d = m.apply(filter.result, source, &|a, b| if a == b { SAME } else { a << 32 | b })?;
        if let Some((path, v)) = m.pick(d, &|v| v != SAME) {
            return Ok(Proof::Mismatch(input_of(&path), (v >> 32) as u32, v as u32));
        }
    }
    // the action cache: no always-allowed (arch, nr) may reach an uncacheable instruction
    let reads = m.exists_from(filter.uncacheable, word::FIRST_ARG_VAR)?;
    let allowed = policy::always_allowed(m, policy)?;
    let both = m.and(reads, allowed)?;
    if both != FALSE {
        if let Some((path, _)) = m.pick(both, &|v| v == 1) {
            let d = input_of(&path);
            return Ok(Proof::NotCacheable(d.arch, d.nr));
        }
    }
    Ok(Proof::Proven)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs_of_paths_put_each_bit_where_the_emulator_reads_it() {
        for (offset, bit) in [(0u32, 0u32), (0, 31), (4, 5), (8, 1), (12, 30), (16, 0), (20, 31), (56, 7), (60, 2)] {
            let var = word::var_of(offset, bit).expect("a seccomp_data word");
            let d = input_of(&[(var, true)]);
            for o in (0..64).step_by(4) {
                let want = if o == offset { 1 << bit } else { 0 };
                assert_eq!(d.word(o), Some(want), "var {var} (offset {offset} bit {bit}) read at {o}");
            }
        }
    }
}
