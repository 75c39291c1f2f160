//! What the checker reports. Each variant has its own code; errors hold spans, never text.

use miette::{Diagnostic, SourceSpan};
use thiserror::Error;

/// Resolution and type errors, and the checker's warnings and lints.
#[derive(Debug, Error, Diagnostic)]
pub enum SemaError {
    /// Two items of one kind share a name.
    #[error("{kind} `{name}` is defined twice")]
    #[diagnostic(code(scpc::resolve::duplicate), help("rename one of them; every file of a unit shares one scope"))]
    Duplicate {
        /// const, group or policy.
        kind: &'static str,
        /// The name.
        name: String,
        /// The second definition.
        #[label(primary, "defined again here")]
        span: SourceSpan,
        /// The first.
        #[label("first defined here")]
        first: SourceSpan,
    },
    /// A name that is neither a const nor a uapi constant of any architecture.
    #[error("unknown constant `{name}`")]
    #[diagnostic(code(scpc::resolve::unknown_const))]
    UnknownConst {
        /// The name.
        name: String,
        /// Where.
        #[label("not a const of this unit nor a uapi constant")]
        span: SourceSpan,
        /// A suggestion.
        #[help]
        help: String,
    },
    /// A uapi constant that some target architecture does not define.
    #[error("constant `{name}` is not defined on {arch}")]
    #[diagnostic(code(scpc::typeck::const_not_on_arch))]
    ConstNotOnArch {
        /// The name.
        name: String,
        /// The architecture.
        arch: String,
        /// Where.
        #[label("unknown on {arch}")]
        span: SourceSpan,
        /// Where it is defined.
        #[help]
        help: String,
    },
    /// A const named like a uapi constant, errno or signal of some architecture.
    #[error("const `{name}` redefines a kernel constant")]
    #[diagnostic(code(scpc::resolve::shadows_uapi))]
    ShadowsUapi {
        /// The name.
        name: String,
        /// The const's name.
        #[label("already a uapi constant")]
        span: SourceSpan,
        /// Where the kernel defines it.
        #[help]
        help: String,
    },
    /// A const defined in terms of itself.
    #[error("const `{name}` depends on itself")]
    #[diagnostic(code(scpc::resolve::const_cycle), help("a const may use other consts, but not in a cycle"))]
    ConstCycle {
        /// The name.
        name: String,
        /// The use that closes the cycle.
        #[label("used here while computing `{name}`")]
        span: SourceSpan,
    },
    /// A shift by 64 or more, or of a negative amount.
    #[error("shift by {amount} is out of range")]
    #[diagnostic(code(scpc::typeck::bad_shift), help("values are 64 bits: shift by 0 to 63"))]
    BadShift {
        /// The amount.
        amount: u64,
        /// Where.
        #[label("shift out of range")]
        span: SourceSpan,
    },
    /// `@name` of no group.
    #[error("unknown group `@{name}`")]
    #[diagnostic(code(scpc::resolve::unknown_group))]
    UnknownGroup {
        /// The name.
        name: String,
        /// Where.
        #[label("no such group")]
        span: SourceSpan,
        /// A suggestion.
        #[help]
        help: String,
    },
    /// A group that contains itself.
    #[error("group `@{name}` contains itself")]
    #[diagnostic(code(scpc::resolve::group_cycle), help("groups may contain groups, but not in a cycle"))]
    GroupCycle {
        /// The name.
        name: String,
        /// The member that closes the cycle.
        #[label("closes the cycle")]
        span: SourceSpan,
    },
    /// A syscall name of no architecture.
    #[error("unknown syscall `{name}`")]
    #[diagnostic(code(scpc::resolve::unknown_syscall))]
    UnknownSyscall {
        /// The name.
        name: String,
        /// Where.
        #[label("not a syscall of any supported architecture")]
        span: SourceSpan,
        /// A suggestion.
        #[help]
        help: String,
    },
    /// A syscall that a target architecture lacks; the rule does not apply there.
    #[error("syscall `{name}` does not exist on {arch}; the rule does not apply there")]
    #[diagnostic(code(scpc::resolve::missing_on_target), severity(Warning))]
    MissingOnTarget {
        /// The name.
        name: String,
        /// The target.
        arch: String,
        /// Where.
        #[label("missing on {arch}")]
        span: SourceSpan,
        /// What to do.
        #[help]
        help: String,
    },
    /// `extends` of no policy, or a test of no policy.
    #[error("unknown policy `{name}`")]
    #[diagnostic(code(scpc::resolve::unknown_policy))]
    UnknownPolicy {
        /// The name.
        name: String,
        /// Where.
        #[label("no such policy")]
        span: SourceSpan,
        /// A suggestion.
        #[help]
        help: String,
    },
    /// `--policy NAME` of no policy of the file.
    #[error("the file defines no policy `{name}`")]
    #[diagnostic(code(scpc::resolve::no_such_policy))]
    NoSuchPolicy {
        /// The name asked for.
        name: String,
        /// The closest policy, else the first, else the file's start.
        #[label(primary, "{label}")]
        span: SourceSpan,
        /// What the primary label says.
        label: String,
        /// The file's other policies.
        #[label(collection)]
        others: Vec<miette::LabeledSpan>,
        /// The choices.
        #[help]
        help: String,
    },
    /// A policy that extends itself through its parents.
    #[error("policy `{name}` extends itself: {chain}")]
    #[diagnostic(code(scpc::resolve::extends_cycle), help("a policy's parents must end in a policy that extends nothing"))]
    ExtendsCycle {
        /// The policy.
        name: String,
        /// `a -> b -> a`.
        chain: String,
        /// The `extends`.
        #[label("closes the cycle")]
        span: SourceSpan,
    },
    /// An `extends` chain longer than the cap.
    #[error("policy `{name}` is more than {max} layers deep")]
    #[diagnostic(
        code(scpc::resolve::extends_too_deep),
        help(
            "a chain of `extends` may hold {max} policies; merge some layers (a layer per service on a fleet baseline needs two or three)"
        )
    )]
    ExtendsTooDeep {
        /// The policy.
        name: String,
        /// The cap.
        max: usize,
        /// Its `extends`.
        #[label("the chain passes {max} policies here")]
        span: SourceSpan,
    },
    /// An architecture name scpc does not know.
    #[error("unknown architecture `{name}`")]
    #[diagnostic(code(scpc::resolve::unknown_arch))]
    UnknownArch {
        /// The name.
        name: String,
        /// Where.
        #[label("not an architecture")]
        span: SourceSpan,
        /// The choices.
        #[help]
        help: String,
    },
    /// A rule whose `on` names no target of the policy: it decides nothing.
    #[error("this rule is for architectures the policy does not target")]
    #[diagnostic(code(scpc::lint::rule_arch_not_target), severity(Warning))]
    RuleArchNotTarget {
        /// The `on` list.
        #[label("none of these is a target")]
        span: SourceSpan,
        /// The targets.
        #[help]
        help: String,
    },
    /// A statement that may appear once per policy, twice.
    #[error("`{stmt}` is given twice in policy `{policy}`")]
    #[diagnostic(code(scpc::resolve::duplicate_statement), help("keep one; a derived policy overrides its parent's by giving its own"))]
    DuplicateStatement {
        /// The statement keyword.
        stmt: &'static str,
        /// The policy.
        policy: String,
        /// The second.
        #[label(primary, "given again here")]
        span: SourceSpan,
        /// The first.
        #[label("first given here")]
        first: SourceSpan,
    },
    /// No `default` anywhere up the chain.
    #[error("policy `{name}` has no default action")]
    #[diagnostic(code(scpc::resolve::no_default), help("add `default kill_process` (or errno(EPERM), log...) to it or to a parent"))]
    NoDefault {
        /// The policy.
        name: String,
        /// Its name.
        #[label("no `default` here or in a parent")]
        span: SourceSpan,
    },
    /// No `target` anywhere up the chain.
    #[error("policy `{name}` has no target architecture")]
    #[diagnostic(code(scpc::resolve::no_target), help("add `target x86_64, aarch64` (any of x86_64, x32, i386, aarch64, arm, riscv64)"))]
    NoTarget {
        /// The policy.
        name: String,
        /// Its name.
        #[label("no `target` here or in a parent")]
        span: SourceSpan,
    },
    /// `kernel >=` older than seccomp filters.
    #[error("kernel {version} has no seccomp filters")]
    #[diagnostic(code(scpc::typeck::kernel_too_old), help("seccomp filters need Linux 3.5 or newer: `kernel >= 3.5`"))]
    KernelTooOld {
        /// The version.
        version: String,
        /// Where.
        #[label("older than 3.5")]
        span: SourceSpan,
    },
    /// An argument name the syscall's signature does not have.
    #[error("`{syscall}` has no argument `{arg}` on {arch}")]
    #[diagnostic(code(scpc::typeck::unknown_arg))]
    UnknownArg {
        /// The argument as written.
        arg: String,
        /// The syscall.
        syscall: String,
        /// The architecture.
        arch: String,
        /// Where.
        #[label("not a parameter of `{syscall}`")]
        span: SourceSpan,
        /// The real parameter names.
        #[help]
        help: String,
    },
    /// `argN` with N past 5.
    #[error("`{arg}` is out of range: syscalls have arguments arg0 to arg5")]
    #[diagnostic(code(scpc::typeck::arg_index), help("seccomp sees six argument registers, arg0 to arg5"))]
    ArgIndex {
        /// The argument.
        arg: String,
        /// Where.
        #[label("no such register")]
        span: SourceSpan,
    },
    /// `argN` where the kernel calls another register's parameter `argN` (prctl's `arg2` is
    /// register 1): `argN` reads register N all the same.
    #[error("`{arg}` of `{syscall}` reads register {reg}, not the kernel's parameter `{arg}` (register {kernel_reg})")]
    #[diagnostic(code(scpc::lint::register_name), severity(Warning))]
    RegisterName {
        /// The argument as written.
        arg: String,
        /// The syscall.
        syscall: String,
        /// The register it reads.
        reg: u8,
        /// The register of the kernel's parameter of that name.
        kernel_reg: u8,
        /// Where.
        #[label("register {reg}")]
        span: SourceSpan,
        /// What each register holds.
        #[help]
        help: String,
    },
    /// `argN` past the syscall's parameters: the register holds whatever was left there.
    #[error("`{syscall}` takes {count} argument(s); `{arg}` is whatever the register holds")]
    #[diagnostic(code(scpc::typeck::arg_unused), severity(Warning))]
    ArgUnused {
        /// The argument.
        arg: String,
        /// The syscall.
        syscall: String,
        /// How many it takes.
        count: usize,
        /// Where.
        #[label("unused by `{syscall}`")]
        span: SourceSpan,
        /// Its parameters.
        #[help]
        help: String,
    },
    /// A constant that does not fit the argument's width: the comparison would be decided by
    /// bits the kernel ignores.
    #[error("{value:#x} does not fit the {bits}-bit argument `{arg}` of `{syscall}` on {arch}")]
    #[diagnostic(code(scpc::typeck::value_too_wide))]
    ValueTooWide {
        /// The value.
        value: u64,
        /// Bits the kernel reads.
        bits: u32,
        /// The argument.
        arg: String,
        /// The syscall.
        syscall: String,
        /// The architecture.
        arch: String,
        /// Where.
        #[label("wider than {bits} bits")]
        span: SourceSpan,
        /// Why it matters.
        #[help]
        help: String,
    },
    /// A mask with bits above the argument's width.
    #[error("mask {value:#x} is wider than the {bits}-bit argument `{arg}` of `{syscall}` on {arch}")]
    #[diagnostic(code(scpc::typeck::mask_too_wide))]
    MaskTooWide {
        /// The mask.
        value: u64,
        /// Bits the kernel reads.
        bits: u32,
        /// The argument.
        arg: String,
        /// The syscall.
        syscall: String,
        /// The architecture.
        arch: String,
        /// Where.
        #[label("wider than {bits} bits")]
        span: SourceSpan,
        /// Why it matters.
        #[help]
        help: String,
    },
    /// A comparison whose outcome is the same for every value the kernel can see.
    #[error("this comparison is always {outcome}: the kernel reads {bits} bits of `{arg}`")]
    #[diagnostic(
        code(scpc::lint::constant_condition),
        severity(Warning),
        help("check the constant and the mask (comparisons are unsigned); drop the condition if it is meant")
    )]
    ConstantCondition {
        /// `true` or `false`.
        outcome: &'static str,
        /// The width.
        bits: u32,
        /// The argument.
        arg: String,
        /// The comparison.
        #[label("always {outcome}")]
        span: SourceSpan,
    },
    /// `A && B` or `A || B` whose outcome is fixed although neither part's is.
    #[error("this condition is always {outcome}{on}: {why}")]
    #[diagnostic(code(scpc::lint::constant_condition), severity(Warning), help("{help}"))]
    ConstantCombination {
        /// `true` or `false`.
        outcome: &'static str,
        /// ` on TARGET, ...` where it is fixed on some targets only, else empty.
        on: String,
        /// Why.
        why: &'static str,
        /// The combination.
        #[label("always {outcome}")]
        span: SourceSpan,
        /// What to do.
        help: &'static str,
    },
    /// Comparing the address a pointer argument holds.
    #[error("`{arg}` of `{syscall}` is a pointer (`{ctype}`): the filter compares the address, not the memory")]
    #[diagnostic(
        code(scpc::lint::pointer_compare),
        severity(Warning),
        help("seccomp cannot read user memory; check the data in the program or with user notification")
    )]
    PointerCompare {
        /// The argument.
        arg: String,
        /// The syscall.
        syscall: String,
        /// Its type.
        ctype: String,
        /// Where.
        #[label("pointer")]
        span: SourceSpan,
    },
    /// errno outside 0..=4095.
    #[error("errno {value} is out of range")]
    #[diagnostic(
        code(scpc::typeck::errno_range),
        help("errno values are 0 to 4095 (the kernel clamps larger ones); use a name such as EPERM")
    )]
    ErrnoRange {
        /// The value.
        value: u64,
        /// Where.
        #[label("not 0..=4095")]
        span: SourceSpan,
    },
    /// An errno name that is not one.
    #[error("unknown errno `{name}`")]
    #[diagnostic(code(scpc::typeck::unknown_errno))]
    UnknownErrno {
        /// The name.
        name: String,
        /// Where.
        #[label("not an errno name")]
        span: SourceSpan,
        /// A suggestion.
        #[help]
        help: String,
    },
    /// trap/trace data past 16 bits.
    #[error("{action} data {value} is out of range")]
    #[diagnostic(code(scpc::typeck::action_data_range), help("the data of trap(N) and trace(N) is 16 bits: 0 to 65535"))]
    ActionDataRange {
        /// trap or trace.
        action: &'static str,
        /// The value.
        value: u64,
        /// Where.
        #[label("not 0..=65535")]
        span: SourceSpan,
    },
    /// Action data whose value differs between the architectures the rule applies to.
    #[error("this action's data has a different value on each architecture: {values}")]
    #[diagnostic(
        code(scpc::typeck::action_differs_by_arch),
        help("write the number, or split the rule with `on ARCH` so that each rule has one value")
    )]
    ActionDiffersByArch {
        /// `errno(64) on arm, errno(256) on x86_64`.
        values: String,
        /// The data.
        #[label("differs by architecture")]
        span: SourceSpan,
    },
    /// An action the policy's oldest kernel does not have.
    #[error("`{action}` needs Linux {needs}, but the policy says `kernel >= {kernel}`")]
    #[diagnostic(code(scpc::typeck::action_too_new))]
    ActionTooNew {
        /// The action.
        action: String,
        /// Its first kernel.
        needs: String,
        /// The policy's.
        kernel: String,
        /// Where.
        #[label("needs Linux {needs}")]
        span: SourceSpan,
        /// What to do.
        #[help]
        help: String,
    },
    /// A syscall the policy's oldest kernel does not have.
    #[error("`{name}` first appeared in Linux {since} on {arch}, after `kernel >= {kernel}`")]
    #[diagnostic(code(scpc::typeck::syscall_too_new), severity(Warning))]
    SyscallTooNew {
        /// The syscall.
        name: String,
        /// When it appeared.
        since: String,
        /// The architecture.
        arch: String,
        /// The policy's oldest kernel.
        kernel: String,
        /// Where.
        #[label("newer than the policy's oldest kernel")]
        span: SourceSpan,
        /// What to do.
        #[help]
        help: String,
    },
    /// A derived policy overriding a `final` rule of an ancestor.
    #[error("`{syscall}` is fixed by a final rule of policy `{layer}`")]
    #[diagnostic(code(scpc::resolve::final_override))]
    FinalOverride {
        /// The syscall.
        syscall: String,
        /// The ancestor.
        layer: String,
        /// The overriding rule.
        #[label(primary, "overrides it here")]
        span: SourceSpan,
        /// The final rule.
        #[label("final rule")]
        final_span: SourceSpan,
        /// What is allowed.
        #[help]
        help: String,
    },
    /// Syscalls a rule names that earlier rules always decide first: one diagnostic per rule.
    #[error("this rule can never decide {syscalls}: an earlier rule always does")]
    #[diagnostic(code(scpc::lint::unreachable_rule), severity(Warning))]
    Unreachable {
        /// The names, listed.
        syscalls: String,
        /// How many.
        count: usize,
        /// The first shadowed reference.
        #[label(primary, "never reached")]
        span: SourceSpan,
        /// The other shadowed references, and the earlier rules.
        #[label(collection)]
        others: Vec<miette::LabeledSpan>,
        /// What to do, by the two rules' actions.
        #[help]
        help: String,
    },
    /// A rule on a syscall that a multiplexer the policy lets through also reaches.
    #[error(
        "on {arch}, `{syscall}` is also reached through `{multiplexer}`, which this policy lets through: this rule does not hold there"
    )]
    #[diagnostic(code(scpc::lint::multiplexer), severity(Warning))]
    Multiplexer {
        /// The multiplexed syscall.
        syscall: String,
        /// socketcall or ipc.
        multiplexer: &'static str,
        /// The architecture.
        arch: String,
        /// The rule's reference.
        #[label("bypassed through `{multiplexer}` on {arch}")]
        span: SourceSpan,
        /// What to do.
        #[help]
        help: String,
    },
    /// A rule on a syscall the kernel lets through before running the filter.
    #[error(
        "from Linux {since}, the kernel lets `{syscall}` through on {arch} without running the filter: this rule does not decide it there"
    )]
    #[diagnostic(
        code(scpc::lint::unfiltered),
        severity(Warning),
        help(
            "seccomp cannot deny it on those kernels; if it must not run, keep uprobes away from the process (it is harmless without one)"
        )
    )]
    Unfiltered {
        /// The syscall.
        syscall: String,
        /// The architecture.
        arch: String,
        /// The first kernel that passes it through.
        since: String,
        /// The reference.
        #[label("never reaches the filter on Linux {since}+")]
        span: SourceSpan,
    },
    /// Letting through a syscall known to widen the kernel attack surface.
    #[error("`{action}` lets `{syscall}` through: {why}")]
    #[diagnostic(code(scpc::lint::attack_surface), severity(Warning))]
    AttackSurface {
        /// allow or log.
        action: String,
        /// The syscall.
        syscall: String,
        /// One line on why.
        why: &'static str,
        /// Where (the name, or the group that brings it in).
        #[label("{via}")]
        span: SourceSpan,
        /// How it got in.
        via: String,
        /// What to do instead.
        #[help]
        help: String,
    },
    /// An architecture listed twice.
    #[error("`{name}` is listed twice")]
    #[diagnostic(code(scpc::resolve::duplicate_target), severity(Warning), help("list each architecture once"))]
    DuplicateTarget {
        /// The architecture.
        name: String,
        /// Where.
        #[label("again")]
        span: SourceSpan,
    },
    /// A test line naming an architecture that is not a target.
    #[error("{arch} is not a target of policy `{policy}`")]
    #[diagnostic(code(scpc::test::arch_not_target))]
    TestArchNotTarget {
        /// The architecture.
        arch: String,
        /// The policy.
        policy: String,
        /// Where.
        #[label("not a target")]
        span: SourceSpan,
        /// Its targets.
        #[help]
        help: String,
    },
    /// A test call with more than six arguments.
    #[error("a syscall has at most 6 arguments; this call gives {count}")]
    #[diagnostic(code(scpc::test::too_many_args), help("drop the extra arguments"))]
    TestTooManyArgs {
        /// How many.
        count: usize,
        /// Where.
        #[label("too many")]
        span: SourceSpan,
    },
    /// A test line whose expectation does not hold.
    #[error("test failed on {arch}: `{call}` gives {actual}, expected {expected}")]
    #[diagnostic(code(scpc::test::failed))]
    TestFailed {
        /// The architecture.
        arch: String,
        /// The call as evaluated.
        call: String,
        /// What the policy decides.
        actual: String,
        /// What the line says.
        expected: String,
        /// The line.
        #[label(primary, "expected {expected}")]
        span: SourceSpan,
        /// The rule that decided, if one did.
        #[label("decided by this rule")]
        rule: Option<SourceSpan>,
        /// Which rule decided.
        #[help]
        help: String,
    },
    /// `--target` names none of a policy's targets: nothing of it would be checked or built.
    #[error("policy `{policy}` has none of the requested targets ({requested})")]
    #[diagnostic(code(scpc::resolve::not_a_target))]
    NotATarget {
        /// The policy.
        policy: String,
        /// The `--target` architectures.
        requested: String,
        /// Its name.
        #[label("targets {targets}")]
        span: SourceSpan,
        /// Its targets.
        targets: String,
        /// What to do.
        #[help]
        help: String,
    },
}
