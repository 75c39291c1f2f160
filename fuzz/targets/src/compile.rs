//! Structured random policies (layering, groups, `final` rules, every condition operator,
//! several architectures) rendered to text, checked and built.

use arbitrary::{Arbitrary, Unstructured};
use scpc::artifact::compile;
use scpc::profile::Profile;

const SYSCALLS: &[&str] = &["read", "write", "openat", "mmap", "socket", "ioctl", "kill", "clone", "prctl", "futex", "lseek", "getpid"];
const ARCHES: &[&str] = &["x86_64", "x32", "i386", "aarch64", "arm", "riscv64"];
const OPS: &[&str] = &["==", "!=", "<", "<=", ">", ">="];

#[derive(Arbitrary, Debug)]
enum Act {
    Allow,
    Log,
    KillThread,
    KillProcess,
    Notify,
    Errno(u16),
    Trap(u16),
    Trace(u16),
}

impl Act {
    fn text(&self) -> String {
        match self {
            Act::Allow => "allow".into(),
            Act::Log => "log".into(),
            Act::KillThread => "kill_thread".into(),
            Act::KillProcess => "kill_process".into(),
            Act::Notify => "notify".into(),
            Act::Errno(n) => format!("errno({})", n % 4096),
            Act::Trap(n) => format!("trap({n})"),
            Act::Trace(n) => format!("trace({n})"),
        }
    }
}

#[derive(Arbitrary, Debug)]
enum Cond {
    Cmp { arg: u8, mask: Option<u64>, op: u8, value: u64 },
    In { arg: u8, negated: bool, values: Vec<u64> },
    And(Box<Cond>, Box<Cond>),
    Or(Box<Cond>, Box<Cond>),
    Not(Box<Cond>),
}

impl Cond {
    fn text(&self, depth: u8) -> String {
        if depth > 4 {
            return "arg0 == 0".into();
        }
        match self {
            Cond::Cmp { arg, mask, op, value } => {
                let m = mask.map(|m| format!(" & {m:#x}")).unwrap_or_default();
                format!("arg{}{m} {} {value:#x}", arg % 3, OPS[usize::from(*op) % OPS.len()])
            }
            Cond::In { arg, negated, values } => {
                let vs: Vec<String> = values.iter().take(5).map(|v| format!("{v:#x}")).collect();
                let vs = if vs.is_empty() { "0".to_string() } else { vs.join(", ") };
                format!("arg{} {}in {{{vs}}}", arg % 3, if *negated { "not " } else { "" })
            }
            Cond::And(a, b) => format!("({} && {})", a.text(depth + 1), b.text(depth + 1)),
            Cond::Or(a, b) => format!("({} || {})", a.text(depth + 1), b.text(depth + 1)),
            Cond::Not(a) => format!("!({})", a.text(depth + 1)),
        }
    }
}

#[derive(Arbitrary, Debug)]
struct Rule {
    is_final: bool,
    action: Act,
    syscalls: Vec<u8>,
    use_group: bool,
    cond: Option<Cond>,
}

#[derive(Arbitrary, Debug)]
struct Layered {
    targets: Vec<u8>,
    default: Act,
    badarch: Act,
    group: Vec<u8>,
    base: Vec<Rule>,
    child: Vec<Rule>,
}

fn names(picks: &[u8]) -> Vec<&'static str> {
    let mut v: Vec<&str> = picks.iter().take(4).map(|p| SYSCALLS[usize::from(*p) % SYSCALLS.len()]).collect();
    v.sort_unstable();
    v.dedup();
    if v.is_empty() {
        v.push("getpid");
    }
    v
}

fn rules(out: &mut String, rules: &[Rule]) {
    for r in rules.iter().take(8) {
        let fin = if r.is_final { "final " } else { "" };
        let mut list = names(&r.syscalls).join(", ");
        if r.use_group {
            list = format!("@g, {list}");
        }
        let cond = r.cond.as_ref().map(|c| format!(" if {}", c.text(0))).unwrap_or_default();
        out.push_str(&format!("    {fin}{} {list}{cond}\n", r.action.text()));
    }
}

/// Renders the policy the bytes describe; checks it; every policy that checks must compile
/// and validate on both profiles.
pub fn run(data: &[u8]) {
    let Ok(p) = Layered::arbitrary_take_rest(Unstructured::new(data)) else { return };
    let mut targets: Vec<&str> = p.targets.iter().take(3).map(|t| ARCHES[usize::from(*t) % ARCHES.len()]).collect();
    targets.sort_unstable();
    targets.dedup();
    if targets.is_empty() {
        targets.push("x86_64");
    }
    let mut text = format!("group g = {}\n", names(&p.group).join(", "));
    text.push_str(&format!(
        "policy base {{\n    target {}\n    kernel >= 5.4\n    default {}\n    badarch {}\n",
        targets.join(", "),
        p.default.text(),
        p.badarch.text()
    ));
    rules(&mut text, &p.base);
    text.push_str("}\npolicy child extends base {\n");
    rules(&mut text, &p.child);
    text.push_str("}\n");
    let (checked, diags, _) = scpc::check_source("fuzz.scp", &text);
    if diags.has_errors() {
        return;
    }
    for name in ["base", "child"] {
        let policy = &checked.policies[name];
        for profile in [Profile::uniform(), scpc::import::trace::builtin_profile()] {
            if let Err(e) = compile(policy, &profile) {
                panic!("{name}: {e}\n{text}");
            }
        }
    }
}
