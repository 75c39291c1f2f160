//! The random layered policies of the differential tests, shared by `differential.rs`
//! (interpreter against emulator, every architecture at once) and `real_kernels.rs` (the real
//! kernels of the test bed's VM nodes): a base and a child that extends it, a group used in
//! rules, `final` rules, every condition operator (`== != < <= > >=`, masks, `in`/`not in`,
//! `&& || !`), every action, `newer`. A [`Shape`] says which targets, syscalls and argument
//! registers a run draws from.

#![allow(dead_code)]

use proptest::prelude::*;

/// What the random policies are made of.
#[derive(Clone, Debug)]
pub struct Shape {
    /// Targets every policy has.
    pub required: &'static [&'static str],
    /// Targets drawn from (a random subsequence of `targets_drawn` of them).
    pub optional: &'static [&'static str],
    /// How many optional targets.
    pub targets_drawn: std::ops::Range<usize>,
    /// Syscalls the rules name (a name missing on a target is a warning: its rule does not
    /// apply there).
    pub syscalls: &'static [&'static str],
    /// Syscalls only the base's `final` rules name (a child may not override them).
    pub finals: &'static [&'static str],
    /// Members of the group `g` that rules use.
    pub group: &'static [&'static str],
    /// Conditions compare registers `arg0..argN` with N below this.
    pub args: u8,
}

/// The syscalls of `differential.rs`.
pub const SYSCALLS: &[&str] =
    &["read", "write", "close", "openat", "mmap", "socket", "ioctl", "fcntl", "kill", "getpid", "futex", "clone3", "lseek", "exit_group"];

/// `differential.rs`: every architecture, arguments 0..2, which every syscall above has on
/// every architecture.
pub const DIFFERENTIAL: Shape = Shape {
    required: &[],
    optional: &["x86_64", "x32", "i386", "aarch64", "arm", "riscv64"],
    targets_drawn: 1..4,
    syscalls: SYSCALLS,
    finals: &["prctl", "setuid", "ptrace"],
    group: &["read", "write", "close", "lseek", "dup", "pread64"],
    args: 3,
};

/// The syscalls of the real-kernel runs: those above, and the ones whose 64-bit parameter
/// takes a register pair on 32-bit ARM (conditions then compare the pair's halves, or the
/// padding register before it, with `argN`).
pub const NODE_SYSCALLS: &[&str] = &[
    "read",
    "write",
    "close",
    "openat",
    "mmap",
    "socket",
    "ioctl",
    "fcntl",
    "kill",
    "getpid",
    "futex",
    "clone3",
    "lseek",
    "exit_group",
    "pread64",
    "pwrite64",
    "ftruncate64",
    "arm_fadvise64_64",
    "arm_sync_file_range",
    "fallocate",
];

/// A real-kernel run on a node of `arch`: policies that target it (and, on aarch64, arm or
/// not: the arm half of an aarch64 filter), every argument register.
pub fn node(required: &'static [&'static str], optional: &'static [&'static str]) -> Shape {
    Shape {
        required,
        optional,
        targets_drawn: 0..optional.len() + 1,
        syscalls: NODE_SYSCALLS,
        finals: &["prctl", "setuid", "ptrace"],
        group: &["read", "write", "close", "lseek", "dup", "pread64"],
        args: 6,
    }
}

pub fn action() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("allow".to_string()),
        Just("log".to_string()),
        Just("kill_thread".to_string()),
        Just("kill_process".to_string()),
        Just("notify".to_string()),
        (0u16..4096).prop_map(|n| format!("errno({n})")),
        (0u16..100).prop_map(|n| format!("trap({n})")),
        (0u16..100).prop_map(|n| format!("trace({n})")),
    ]
}

fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        (0u64..8).prop_map(|v| v.to_string()),
        any::<u32>().prop_map(|v| format!("{v:#x}")),
        Just("-1".to_string()),
        Just("0xffffffff".to_string()),
        Just("0x80000000".to_string()),
    ]
}

fn cond(args: u8) -> impl Strategy<Value = String> {
    let cmp = (0u8..args, prop::option::of(value()), prop::sample::select(vec!["==", "!=", "<", "<=", ">", ">="]), value()).prop_map(
        |(a, m, op, v)| match m {
            Some(m) => format!("arg{a} & {m} {op} {v}"),
            None => format!("arg{a} {op} {v}"),
        },
    );
    let set = (0u8..args, any::<bool>(), prop::collection::vec(value(), 1..4))
        .prop_map(|(a, neg, vs)| format!("arg{a} {}in {{{}}}", if neg { "not " } else { "" }, vs.join(", ")));
    prop_oneof![cmp, set].prop_recursive(3, 8, 2, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a} && {b})")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a} || {b})")),
            inner.prop_map(|a| format!("!({a})")),
        ]
    })
}

fn rule(shape: &Shape) -> impl Strategy<Value = String> {
    (action(), prop::sample::subsequence(shape.syscalls.to_vec(), 1..4), any::<bool>(), prop::option::of(cond(shape.args))).prop_map(
        |(a, s, group, c)| {
            let c = c.map(|c| format!(" if {c}")).unwrap_or_default();
            let g = if group { "@g, " } else { "" };
            format!("    {a} {g}{}{c}\n", s.join(", "))
        },
    )
}

fn final_rule(shape: &Shape) -> impl Strategy<Value = String> {
    (action(), prop::sample::subsequence(shape.finals.to_vec(), 1..3), prop::option::of(cond(shape.args))).prop_map(|(a, s, c)| {
        let c = c.map(|c| format!(" if {c}")).unwrap_or_default();
        format!("    final {a} {}{c}\n", s.join(", "))
    })
}

/// A random policy pair: `base` and `child extends base`.
pub fn policy(shape: &Shape) -> impl Strategy<Value = String> {
    let required = shape.required;
    let targets = prop::sample::subsequence(shape.optional.to_vec(), shape.targets_drawn.clone())
        .prop_map(move |t| required.iter().copied().chain(t).collect::<Vec<_>>());
    let group = prop::sample::subsequence(shape.group.to_vec(), 1..4);
    let rules = (
        prop::collection::vec(final_rule(shape), 0..2),
        prop::collection::vec(rule(shape), 0..6),
        prop::collection::vec(rule(shape), 0..6),
    );
    (targets, action(), action(), prop::option::of(action()), group, rules).prop_map(|(t, default, badarch, newer, group, (finals, base, child))| {
        let newer = newer.map(|n| format!("    newer {n}\n")).unwrap_or_default();
        format!(
            "group g = {}\npolicy base {{\n    target {}\n    kernel >= 5.4\n    default {default}\n    badarch {badarch}\n{newer}{}{}}}\npolicy child extends base {{\n{}}}\n",
            group.join(", "),
            t.join(", "),
            finals.concat(),
            base.concat(),
            child.concat()
        )
    })
}

/// Random policy files of `shape` that check without errors, drawn from `seed` (the same seed
/// gives the same files, in the same order).
pub fn samples(shape: &Shape, seed: u64) -> impl Iterator<Item = (String, scpc::sema::Checked)> {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&seed.to_le_bytes());
    let mut runner = TestRunner::new_with_rng(Config::default(), TestRng::from_seed(RngAlgorithm::ChaCha, &bytes));
    let strategy = policy(shape);
    let mut rejected = 0;
    std::iter::from_fn(move || loop {
        let text = strategy.new_tree(&mut runner).expect("a policy").current();
        let (checked, diags, _) = scpc::check_source("r.scp", &text);
        if !diags.has_errors() {
            rejected = 0;
            return Some((text, checked));
        }
        rejected += 1;
        assert!(rejected < 1000, "the generator keeps making policies that do not check");
    })
}

/// The first `count` of [`samples`].
pub fn sample(shape: &Shape, count: usize, seed: u64) -> Vec<(String, scpc::sema::Checked)> {
    samples(shape, seed).take(count).collect()
}

/// The seed of a run: `SCPC_SEED`, or a fixed one (so that CI runs the same policies each time).
pub fn seed() -> u64 {
    std::env::var("SCPC_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0x5eed_0020)
}
