//! The text form of a filter: one instruction per line, jump targets as labels, loads and
//! returns named (`ld nr`, `ld args[2].lo`, `ret errno(13)`), AUDIT_ARCH values named. Every
//! instruction seccomp accepts has its mnemonic (`ld M[3]`, `stx M[0]`, `add x`, `ret a`,
//! `jgt x`...); anything else is printed as `.insn` with its fields.
//!
//! [`disasm`] is the plain form (the codegen snapshots' format). [`annotated`] reads the
//! program as `scpc disasm` prints it: a header (policy, targets, sha256), and what each
//! comparison means where the path to it says so. It follows every path forward (a classic
//! BPF program has no backward jump) and knows, at each instruction, what A holds (the
//! syscall number, the architecture, an argument's half), which architecture the path has
//! compared equal (`jeq AUDIT_ARCH_X86_64`), and the range of syscall numbers the path
//! allows. So a comparison of the number names the syscall of that architecture (`jeq
//! openat`; x32 numbers by x32's table), a jump that leaves the number search says which
//! numbers take it (`read..pwrite64`), a load of an argument of a known syscall names the
//! parameter, and a value compared with it names the constant where one fits the parameter
//! (`O_RDONLY`, `AF_UNIX`). It names what it sees, whatever compiler made the program, and
//! assumes no pattern of scpc's code generator.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use super::sim::{decode, AluOp, JmpOp, Op, Src};
use super::*;
use crate::abi::{Arch, X32_SYSCALL_BIT};

fn field(offset: u32) -> String {
    match offset {
        OFF_NR => "nr".into(),
        OFF_ARCH => "arch".into(),
        8 => "instruction_pointer.lo".into(),
        12 => "instruction_pointer.hi".into(),
        o if (16..64).contains(&o) => format!("args[{}].{}", (o - 16) / 8, if (o - 16) % 8 == 0 { "lo" } else { "hi" }),
        o => format!("[{o}]"),
    }
}

pub use crate::ir::ret_name;

fn constant(k: u32) -> String {
    match Arch::ALL.iter().find(|a| a.table().audit_arch == k && **a != Arch::X32) {
        Some(a) => format!("{k:#x} ({})", a.name()),
        None if k > 9 => format!("{k:#x}"),
        None => k.to_string(),
    }
}

fn alu_name(op: AluOp) -> &'static str {
    match op {
        AluOp::Add => "add",
        AluOp::Sub => "sub",
        AluOp::Mul => "mul",
        AluOp::Div => "div",
        AluOp::Or => "or",
        AluOp::And => "and",
        AluOp::Lsh => "lsh",
        AluOp::Rsh => "rsh",
        AluOp::Xor => "xor",
    }
}

fn jmp_name(op: JmpOp) -> &'static str {
    match op {
        JmpOp::Eq => "jeq",
        JmpOp::Gt => "jgt",
        JmpOp::Ge => "jge",
        JmpOp::Set => "jset",
    }
}

/// The jump targets of a program (instruction indexes).
fn targets(insns: &[Insn]) -> BTreeSet<usize> {
    let mut targets = BTreeSet::new();
    for (pc, i) in insns.iter().enumerate() {
        if i.code & 0x07 == BPF_JMP {
            if i.code == BPF_JMP | BPF_JA {
                targets.insert(pc + 1 + i.k as usize);
            } else {
                targets.insert(pc + 1 + i.jt as usize);
                targets.insert(pc + 1 + i.jf as usize);
            }
        }
    }
    targets
}

fn label(pc: usize) -> String {
    format!("L{pc}")
}

/// One instruction as text, its operand named by `name` (the plain form passes
/// [`constant`]).
fn text(pc: usize, i: &Insn, name: &dyn Fn(u32) -> String) -> String {
    let Some(op) = decode(i) else {
        return format!(".insn code={:#06x} jt={} jf={} k={:#x}", i.code, i.jt, i.jf, i.k);
    };
    let src = |s: Src| match s {
        Src::K(k) => name(k),
        Src::X => "x".to_string(),
    };
    match op {
        Op::LdAbs(k) => format!("ld {}", field(k)),
        Op::LdImm(_) if i.code == 0x80 => "ld len".into(),
        Op::LdxImm(_) if i.code == 0x81 => "ldx len".into(),
        Op::LdImm(k) => format!("ld #{k:#x}"),
        Op::LdxImm(k) => format!("ldx #{k:#x}"),
        Op::LdMem(k) => format!("ld M[{k}]"),
        Op::LdxMem(k) => format!("ldx M[{k}]"),
        Op::St(k) => format!("st M[{k}]"),
        Op::Stx(k) => format!("stx M[{k}]"),
        Op::Alu(AluOp::And, Src::K(k)) => format!("and {k:#x}"),
        Op::Alu(op, s) => format!("{} {}", alu_name(op), src(s)),
        Op::Neg => "neg".into(),
        Op::Tax => "tax".into(),
        Op::Txa => "txa".into(),
        Op::Ja(k) => format!("ja {}", label(pc + 1 + k as usize)),
        Op::RetK(k) => format!("ret {}", ret_name(k)),
        Op::RetA => "ret a".into(),
        Op::Jmp(op, s, jt, jf) => {
            let (t, f) = (pc + 1 + jt as usize, pc + 1 + jf as usize);
            let v = src(s);
            match (jt, jf) {
                (_, 0) => format!("{} {v}, {}", jmp_name(op), label(t)),
                (0, _) => format!("{} {v}, next, {}", jmp_name(op), label(f)),
                _ => format!("{} {v}, {}, {}", jmp_name(op), label(t), label(f)),
            }
        }
    }
}

/// The program as text with `L<n>:` labels at jump targets.
pub fn disasm(program: &Program) -> String {
    let insns = &program.insns;
    let targets = targets(insns);
    let mut out = String::new();
    for (pc, i) in insns.iter().enumerate() {
        if targets.contains(&pc) {
            let _ = writeln!(out, "{}:", label(pc));
        }
        let _ = writeln!(out, "  {pc:4}  {}", text(pc, i, &constant));
    }
    out
}

/// What a listing says about the filter before its instructions.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Header {
    /// The policy it was built from, when known (from its build manifest).
    pub policy: Option<String>,
    /// The architectures it decides (`x86_64+x32+i386`), when known.
    pub targets: Vec<String>,
    /// The sha256 of its bytes.
    pub sha256: String,
    /// Where the facts come from (`web.manifest.json`), or why they are missing.
    pub source: String,
}

/// What A holds on a path.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Word {
    /// `seccomp_data.nr`.
    Nr,
    /// `seccomp_data.arch`.
    Arch,
    /// Half of an argument, possibly masked by `and`.
    Arg { index: u8, hi: bool },
    /// Anything else.
    Unknown,
}

/// What a path knows at an instruction.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
struct State {
    a: Word,
    /// The AUDIT_ARCH value the path compared equal, if any.
    arch: Option<u32>,
    /// The syscall numbers the path allows: all of them, or (not `exact`) some of them.
    nr: (u32, u32),
    /// Whether every number of `nr` takes the path.
    exact: bool,
}

impl State {
    fn merge(self, o: State) -> State {
        State {
            a: if self.a == o.a { self.a } else { Word::Unknown },
            arch: if self.arch == o.arch { self.arch } else { None },
            nr: (self.nr.0.min(o.nr.0), self.nr.1.max(o.nr.1)),
            // two exact ranges that touch are one exact range
            exact: self.exact && o.exact && self.nr.0.max(o.nr.0).saturating_sub(1) <= self.nr.1.min(o.nr.1),
        }
    }

    /// The architecture whose table names the numbers of this path.
    fn table_arch(&self) -> Option<Arch> {
        let audit = self.arch?;
        let x32 = self.nr.0 >= X32_SYSCALL_BIT && self.nr.1 < 2 * X32_SYSCALL_BIT;
        Arch::ALL.into_iter().find(|a| a.table().audit_arch == audit && (*a == Arch::X32) == x32)
    }

    fn syscall(&self) -> Option<&'static crate::abi::Syscall> {
        (self.nr.0 == self.nr.1).then(|| self.table_arch()?.table().by_nr(self.nr.0)).flatten()
    }
}

/// The state on the true and false edges of `jmp op k` taken in `s` (`None`: no input takes
/// it).
fn branch(s: State, op: JmpOp, k: u32) -> (Option<State>, Option<State>) {
    let with = |lo: u32, hi: u32| (lo <= hi).then_some(State { nr: (lo, hi), ..s });
    let (lo, hi) = s.nr;
    match (s.a, op) {
        (Word::Nr, JmpOp::Eq) => {
            let other = match k {
                _ if k < lo || k > hi => Some(s),
                _ if lo == hi => None,
                _ if k == lo => with(lo + 1, hi),
                _ if k == hi => with(lo, hi - 1),
                _ => Some(State { exact: false, ..s }),
            };
            (with(lo.max(k), hi.min(k)), other)
        }
        (Word::Nr, JmpOp::Gt) => (k.checked_add(1).and_then(|k1| with(lo.max(k1), hi)), with(lo, hi.min(k))),
        (Word::Nr, JmpOp::Ge) => (with(lo.max(k), hi), k.checked_sub(1).and_then(|k1| with(lo, hi.min(k1)))),
        (Word::Arch, JmpOp::Eq) => (Some(State { arch: Some(k), ..s }), Some(s)),
        _ => (Some(s), Some(s)),
    }
}

/// The state each instruction is reached in (`None`: unreachable).
fn states(insns: &[Insn]) -> Vec<Option<State>> {
    let mut at: Vec<Option<State>> = vec![None; insns.len() + 1];
    if let Some(first) = at.first_mut() {
        *first = Some(State { a: Word::Unknown, arch: None, nr: (0, u32::MAX), exact: true });
    }
    let reach = |at: &mut Vec<Option<State>>, to: usize, s: Option<State>| {
        if let (Some(slot), Some(s)) = (at.get_mut(to), s) {
            *slot = Some(slot.map_or(s, |old| old.merge(s)));
        }
    };
    for pc in 0..insns.len() {
        let Some(s) = at[pc] else { continue };
        let Some(op) = decode(&insns[pc]) else { continue };
        let next = State {
            a: match op {
                Op::LdAbs(OFF_NR) => Word::Nr,
                Op::LdAbs(OFF_ARCH) => Word::Arch,
                Op::LdAbs(o) if (16..64).contains(&o) => Word::Arg { index: ((o - 16) / 8) as u8, hi: (o - 16) % 8 != 0 },
                Op::Alu(AluOp::And, Src::K(_)) => s.a,
                Op::St(_) | Op::Stx(_) | Op::Tax | Op::LdxImm(_) | Op::LdxMem(_) => s.a,
                _ => Word::Unknown,
            },
            ..s
        };
        match op {
            Op::RetK(_) | Op::RetA => {}
            Op::Ja(k) => reach(&mut at, pc + 1 + k as usize, Some(s)),
            Op::Jmp(op, Src::K(k), jt, jf) => {
                let (t, f) = branch(s, op, k);
                reach(&mut at, pc + 1 + usize::from(jt), t);
                reach(&mut at, pc + 1 + usize::from(jf), f);
            }
            Op::Jmp(_, Src::X, jt, jf) => {
                reach(&mut at, pc + 1 + usize::from(jt), Some(s));
                reach(&mut at, pc + 1 + usize::from(jf), Some(s));
            }
            _ => reach(&mut at, pc + 1, Some(next)),
        }
    }
    at.truncate(insns.len());
    at
}

/// A syscall number as the path's table names it: `openat`, or the number.
fn nr_name(arch: Option<Arch>, nr: u32) -> String {
    match arch.and_then(|a| a.table().by_nr(nr)) {
        Some(s) => s.name.to_string(),
        None if nr > 9 => format!("{nr:#x}"),
        None => nr.to_string(),
    }
}

/// `read..pwrite64`, `openat`, or numbers where the table has no name.
fn range_name(arch: Option<Arch>, (lo, hi): (u32, u32)) -> String {
    if lo == hi {
        nr_name(arch, lo)
    } else {
        format!("{}..{}", nr_name(arch, lo), nr_name(arch, hi))
    }
}

/// Prefixes of the constants a parameter takes, by parameter name (and syscall where the
/// name alone says too little).
fn constant_prefixes(syscall: &str, param: &str) -> &'static [&'static str] {
    match (syscall, param) {
        (_, "family" | "domain") => &["AF_"],
        ("socket" | "socketpair", "type") => &["SOCK_"],
        (_, "level") => &["SOL_", "IPPROTO_"],
        ("open" | "openat" | "openat2" | "open_by_handle_at", "flags") => &["O_"],
        (_, "prot") => &["PROT_"],
        ("mmap" | "mmap2" | "mremap", "flags") => &["MAP_", "MREMAP_"],
        ("futex" | "futex_time64", "op") => &["FUTEX_"],
        ("fcntl" | "fcntl64", "cmd") => &["F_"],
        ("ioctl", "cmd") => &["FIO", "TC", "TIOC", "FS_IOC", "SIOC", "BLK", "KVM_", "VFIO_"],
        ("prctl", "option") => &["PR_"],
        ("arch_prctl", _) => &["ARCH_"],
        ("clone", "clone_flags") | ("unshare", _) | ("setns", "flags") => &["CLONE_"],
        ("madvise", _) => &["MADV_"],
        (_, "resource") => &["RLIMIT_"],
        (_, "which_clock") => &["CLOCK_"],
        (_, "sig") => &["SIG"],
        ("kill" | "tgkill" | "tkill", _) => &["SIG"],
        (_, "how") => &["SIG_"],
        ("ptrace", "request") => &["PTRACE_"],
        ("personality", _) => &["PER_"],
        (_, "whence") => &["SEEK_"],
        _ => &[],
    }
}

/// The constant of `arch` that `value` stands for as `param` of `syscall`: one whose name has a
/// prefix the parameter takes and whose value (cut to the half compared) is `value`.
fn constant_name(arch: Arch, syscall: &str, param: &str, value: u32, hi: bool) -> Option<&'static str> {
    let prefixes = constant_prefixes(syscall, param);
    if prefixes.is_empty() {
        return None;
    }
    let table = arch.table();
    let mut found: Vec<&'static str> = table
        .constant_names()
        .filter(|n| prefixes.iter().any(|p| n.starts_with(p)))
        .filter(|n| table.constant(n).is_some_and(|v| (if hi { (v >> 32) as u32 } else { v as u32 }) == value))
        .collect();
    // aliases last (AF_LOCAL and AF_FILE are AF_UNIX), then the shortest name
    found.sort_by_key(|n| (n.contains("LOCAL") || n.contains("FILE") || n.starts_with("PF_"), n.len(), *n));
    found.first().copied()
}

/// The listing of `scpc disasm`: the header, then [`disasm`]'s lines with what each means
/// where the paths to it say (see the module's documentation).
pub fn annotated(program: &Program, header: &Header) -> String {
    let insns = &program.insns;
    let jump_targets = targets(insns);
    let at = states(insns);
    let mut out = String::new();
    let _ = writeln!(out, "# policy: {}", header.policy.as_deref().unwrap_or("unknown"));
    if !header.targets.is_empty() {
        let _ = writeln!(out, "# targets: {}", header.targets.join("+"));
    }
    let _ = writeln!(out, "# sha256: {}", header.sha256);
    if !header.source.is_empty() {
        let _ = writeln!(out, "# from: {}", header.source);
    }
    let _ = writeln!(out, "# {} instructions", insns.len());
    for (pc, i) in insns.iter().enumerate() {
        if jump_targets.contains(&pc) {
            let _ = writeln!(out, "{}:", label(pc));
        }
        let state = at[pc];
        let (line, note) = match state {
            Some(s) => explain(pc, i, s, insns, &at),
            None => (text(pc, i, &constant), "unreachable".to_string()),
        };
        let line = format!("  {pc:4}  {line}");
        if note.is_empty() {
            let _ = writeln!(out, "{line}");
        } else {
            let _ = writeln!(out, "{line:<44} # {note}");
        }
    }
    out
}

/// Each instruction as [`annotated`] prints it, by index (for `scpc sim --trace`).
pub fn annotated_lines(program: &Program) -> Vec<String> {
    let at = states(&program.insns);
    program
        .insns
        .iter()
        .enumerate()
        .map(|(pc, i)| {
            let (line, note) = match at[pc] {
                Some(s) => explain(pc, i, s, &program.insns, &at),
                None => (text(pc, i, &constant), String::new()),
            };
            if note.is_empty() {
                line
            } else {
                format!("{line:<38} # {note}")
            }
        })
        .collect()
}

/// Where a jump to `to` ends after the `ja`s it meets.
fn through_ja(insns: &[Insn], mut to: usize) -> usize {
    for _ in 0..insns.len() {
        match insns.get(to).and_then(decode) {
            Some(Op::Ja(k)) => to += 1 + k as usize,
            _ => break,
        }
    }
    to
}

/// One instruction in its path's state: its text with operands named, and a note.
fn explain(pc: usize, i: &Insn, s: State, insns: &[Insn], at: &[Option<State>]) -> (String, String) {
    let arch = s.table_arch();
    let op = decode(i);
    match (op, s.a) {
        (Some(Op::Jmp(jop, Src::K(k), jt, jf)), Word::Nr) => {
            let name = |k: u32| nr_name(arch, k);
            let line = text(pc, i, &name);
            // the numbers each edge that leaves the number search takes
            let (t, f) = branch(s, jop, k);
            let mut notes = Vec::new();
            for (edge, to) in [(t, pc + 1 + usize::from(jt)), (f, pc + 1 + usize::from(jf))] {
                let Some(e) = edge.filter(|e| e.exact) else { continue };
                let end = through_ja(insns, to);
                let searches_on = matches!(insns.get(end).and_then(decode), Some(Op::Jmp(..)))
                    && at.get(end).copied().flatten().is_some_and(|s| s.a == Word::Nr);
                if !searches_on {
                    let target = if to == pc + 1 { "next".to_string() } else { label(to) };
                    notes.push(format!("{} → {target}", range_name(arch, e.nr)));
                }
            }
            (line, notes.join("; "))
        }
        (Some(Op::Jmp(_, Src::K(_), _, _)), Word::Arch) => (text(pc, i, &constant), String::new()),
        (Some(Op::Jmp(_, Src::K(_), _, _) | Op::Alu(AluOp::And, Src::K(_))), Word::Arg { index, hi }) => {
            let sys = s.syscall();
            let param = sys.and_then(|sys| sys.params.iter().find(|p| p.reg == index || p.reg_hi == Some(index)));
            let name = |k: u32| match (arch, sys, param) {
                (Some(a), Some(sys), Some(p)) => match constant_name(a, sys.name, p.name, k, hi && p.reg_hi.is_none()) {
                    Some(c) => format!("{c} ({k:#x})"),
                    None => constant(k),
                },
                _ => constant(k),
            };
            let line = match op {
                Some(Op::Alu(AluOp::And, Src::K(k))) => format!("and {}", name(k)),
                _ => text(pc, i, &name),
            };
            (line, String::new())
        }
        (Some(Op::LdAbs(o)), _) if (16..64).contains(&o) => {
            let index = ((o - 16) / 8) as u8;
            let note = match (s.syscall(), arch) {
                (Some(sys), Some(a)) => match sys.params.iter().find(|p| p.reg == index || p.reg_hi == Some(index)) {
                    Some(p) => format!("{}'s {} ({}) on {a}", sys.name, p.name, p.ctype),
                    None => format!("{} has no parameter in this register on {a}", sys.name),
                },
                _ if s.nr.0 != s.nr.1 || arch.is_none() => String::new(),
                _ => format!("syscall {}", s.nr.0),
            };
            (text(pc, i, &constant), note)
        }
        (Some(Op::RetK(_) | Op::RetA), _) if s.exact && s.nr != (0, u32::MAX) && s.arch.is_some() => {
            let what = arch.map_or_else(|| format!("arch {:#x}", s.arch.unwrap_or(0)), |a| a.name().to_string());
            (text(pc, i, &constant), format!("{what}: {}", range_name(arch, s.nr)))
        }
        _ => (text(pc, i, &constant), String::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listing_of_a_program_the_kernel_refuses_does_not_panic() {
        // jumps past the end, a bad opcode, a load outside seccomp_data
        let p = Program {
            insns: vec![
                Insn::ld(OFF_NR),
                Insn::jmp(BPF_JEQ, 0, 200, 200),
                Insn { code: 0xffff, jt: 0, jf: 0, k: 0 },
                Insn::ja(u32::MAX),
                Insn::ld(4000),
            ],
        };
        let text = annotated(&p, &Header::default());
        assert!(text.contains(".insn code=0xffff"), "{text}");
        assert_eq!(annotated_lines(&p).len(), 5);
    }

    #[test]
    fn numbers_are_named_by_the_architecture_the_path_compared() {
        let x86 = Arch::X86_64.table().audit_arch;
        let p = Program {
            insns: vec![
                Insn::ld(OFF_ARCH),
                Insn::jmp(BPF_JEQ, x86, 0, 4),
                Insn::ld(OFF_NR),
                Insn::jmp(BPF_JGE, 19, 1, 0),
                Insn::ret(0x7fff_0000),
                Insn::ret(0x0005_0001),
            ],
        };
        let text = annotated(&p, &Header::default());
        assert!(text.contains("jge readv, L5"), "{text}");
        assert!(text.contains("readv..0xffffffff → L5; read..pwrite64 → next"), "{text}");
        assert!(text.contains("ret errno(1)") && text.contains("x86_64: read..pwrite64"), "{text}");
    }
}
