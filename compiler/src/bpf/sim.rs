//! An emulator of classic seccomp BPF, written from the kernel's rules and independent of
//! scpc's code generator: it is one of the judges every build is checked by, and it runs the
//! filters of other tools (libseccomp, seccompiler, minijail, systemd) too.
//!
//! It takes every instruction the kernel's seccomp loader accepts (net/core/filter.c
//! `bpf_check_classic`, kernel/seccomp.c `seccomp_check_filter`): `ld [k]` inside
//! `seccomp_data`, `ld/ldx len` (64), `ld/ldx #k`, `ld/ldx M[k]`, `st/stx M[k]`, the ALU
//! operations add, sub, mul, div, and, or, xor, lsh, rsh with a constant or X, `neg`, `tax`,
//! `txa`, `ja`, `jeq/jgt/jge/jset` with a constant or X, `ret #k` and `ret a`. The kernel's
//! meaning, as measured on the real kernel by `compiler/tests/sim_kernel.rs`: A and X start at
//! 0, arithmetic wraps at 32 bits, shifts by X use its low 5 bits, and a division by X = 0
//! ends the program returning 0 (SECCOMP_RET_KILL_THREAD). [`check`] refuses exactly what the
//! kernel refuses (`mod` among them: seccomp does not take it).

use super::*;

/// The input of a filter: `struct seccomp_data`.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Default)]
pub struct SeccompData {
    /// Syscall number.
    pub nr: u32,
    /// AUDIT_ARCH_*.
    pub arch: u32,
    /// Instruction pointer.
    pub instruction_pointer: u64,
    /// Arguments.
    pub args: [u64; 6],
}

/// `sizeof(struct seccomp_data)`: what `ld len` loads.
pub const SECCOMP_DATA_LEN: u32 = 64;

/// Scratch memory words (`BPF_MEMWORDS`).
pub const MEMWORDS: u32 = 16;

impl SeccompData {
    /// The 32-bit word at a byte offset (little-endian layout), if the offset is valid.
    pub fn word(&self, offset: u32) -> Option<u32> {
        match offset {
            0 => Some(self.nr),
            4 => Some(self.arch),
            8 => Some(self.instruction_pointer as u32),
            12 => Some((self.instruction_pointer >> 32) as u32),
            16..=60 if offset.is_multiple_of(4) => {
                let arg = self.args[((offset - 16) / 8) as usize];
                Some(if (offset - 16).is_multiple_of(8) { arg as u32 } else { (arg >> 32) as u32 })
            }
            _ => None,
        }
    }
}

/// An ALU operation.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum AluOp {
    /// `A + v`.
    Add,
    /// `A - v`.
    Sub,
    /// `A * v`.
    Mul,
    /// `A / v` (unsigned; by X = 0 the program returns 0).
    Div,
    /// `A | v`.
    Or,
    /// `A & v`.
    And,
    /// `A << (v & 31)`.
    Lsh,
    /// `A >> (v & 31)`.
    Rsh,
    /// `A ^ v`.
    Xor,
}

/// A conditional jump's test of A against a value.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum JmpOp {
    /// `A == v`.
    Eq,
    /// `A > v` (unsigned).
    Gt,
    /// `A >= v` (unsigned).
    Ge,
    /// `A & v != 0`.
    Set,
}

/// The second operand of an ALU operation or a jump.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Src {
    /// The constant `k`.
    K(u32),
    /// The index register.
    X,
}

/// One instruction as seccomp runs it (after the loader's rewriting of `len` loads).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    /// `A = seccomp_data word at offset k`.
    LdAbs(u32),
    /// `A = k` (`ld #k`, and `ld len` as 64).
    LdImm(u32),
    /// `X = k` (`ldx #k`, and `ldx len` as 64).
    LdxImm(u32),
    /// `A = M[k]`.
    LdMem(u32),
    /// `X = M[k]`.
    LdxMem(u32),
    /// `M[k] = A`.
    St(u32),
    /// `M[k] = X`.
    Stx(u32),
    /// `A = A op v`.
    Alu(AluOp, Src),
    /// `A = -A`.
    Neg,
    /// `X = A`.
    Tax,
    /// `A = X`.
    Txa,
    /// Jump forward by k.
    Ja(u32),
    /// Jump by `jt` if `A op v`, else by `jf`.
    Jmp(JmpOp, Src, u8, u8),
    /// Return k.
    RetK(u32),
    /// Return A.
    RetA,
}

/// Decodes an instruction the seccomp loader accepts, or `None` for an opcode it refuses
/// (the operand checks are [`check`]'s).
pub fn decode(insn: &Insn) -> Option<Op> {
    let k = insn.k;
    let alu = |op: u16| match op {
        0x00 => Some(AluOp::Add),
        0x10 => Some(AluOp::Sub),
        0x20 => Some(AluOp::Mul),
        0x30 => Some(AluOp::Div),
        0x40 => Some(AluOp::Or),
        0x50 => Some(AluOp::And),
        0x60 => Some(AluOp::Lsh),
        0x70 => Some(AluOp::Rsh),
        0xa0 => Some(AluOp::Xor),
        _ => None, // 0x80 neg (below), 0x90 mod: seccomp refuses it
    };
    let jmp = |op: u16| match op {
        0x10 => Some(JmpOp::Eq),
        0x20 => Some(JmpOp::Gt),
        0x30 => Some(JmpOp::Ge),
        0x40 => Some(JmpOp::Set),
        _ => None,
    };
    let src = |code: u16| if code & 0x08 == 0 { Src::K(k) } else { Src::X };
    Some(match insn.code {
        0x20 => Op::LdAbs(k),
        0x00 => Op::LdImm(k),
        0x80 => Op::LdImm(SECCOMP_DATA_LEN),
        0x01 => Op::LdxImm(k),
        0x81 => Op::LdxImm(SECCOMP_DATA_LEN),
        0x60 => Op::LdMem(k),
        0x61 => Op::LdxMem(k),
        0x02 => Op::St(k),
        0x03 => Op::Stx(k),
        0x84 => Op::Neg,
        0x07 => Op::Tax,
        0x87 => Op::Txa,
        0x05 => Op::Ja(k),
        0x06 => Op::RetK(k),
        0x16 => Op::RetA,
        c if c & 0xff07 == BPF_ALU => Op::Alu(alu(c & 0xf0)?, src(c)),
        c if c & 0xff07 == BPF_JMP => Op::Jmp(jmp(c & 0xf0)?, src(c), insn.jt, insn.jf),
        _ => return None,
    })
}

/// An ALU operation on concrete values; `None` for a division by 0 (the program then
/// returns 0).
pub fn alu(op: AluOp, a: u32, v: u32) -> Option<u32> {
    Some(match op {
        AluOp::Add => a.wrapping_add(v),
        AluOp::Sub => a.wrapping_sub(v),
        AluOp::Mul => a.wrapping_mul(v),
        AluOp::Div => a.checked_div(v)?,
        AluOp::Or => a | v,
        AluOp::And => a & v,
        AluOp::Lsh => a << (v & 31),
        AluOp::Rsh => a >> (v & 31),
        AluOp::Xor => a ^ v,
    })
}

/// A jump's test on concrete values.
pub fn test(op: JmpOp, a: u32, v: u32) -> bool {
    match op {
        JmpOp::Eq => a == v,
        JmpOp::Gt => a > v,
        JmpOp::Ge => a >= v,
        JmpOp::Set => a & v != 0,
    }
}

/// Why a program cannot run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SimError {
    /// An opcode seccomp does not accept.
    BadOpcode {
        /// Where.
        pc: usize,
        /// The opcode.
        code: u16,
    },
    /// A load outside `seccomp_data` or not 4-byte aligned.
    BadLoad {
        /// Where.
        pc: usize,
        /// The offset.
        offset: u32,
    },
    /// A jump past the end, or running off the end.
    OutOfBounds {
        /// Where.
        pc: usize,
    },
    /// More than BPF_MAXINSNS instructions, or none.
    BadLength(usize),
    /// A scratch memory index of 16 or more, a shift by 32 or more, or a division by the
    /// constant 0.
    BadOperand {
        /// Where.
        pc: usize,
        /// The operand.
        k: u32,
    },
    /// A read of a scratch memory word that some path reaches without storing it.
    UnsetMemory {
        /// Where.
        pc: usize,
        /// The word.
        k: u32,
    },
}

/// The result of a run.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// The value returned.
    pub ret: u32,
    /// Instructions executed.
    pub executed: usize,
    /// Jumps taken (conditional jumps whose offset was not 0, and `ja`).
    pub taken: usize,
    /// Whether anything but `nr` and `arch` was read.
    pub read_args: bool,
}

/// Runs a program on one input. It meets each instruction as the kernel's checker would
/// (bad opcodes, loads and operands are errors where they are run); the kernel also
/// refuses, before running anything, programs that [`check`] refuses.
pub fn run(program: &Program, data: &SeccompData) -> Result<Outcome, SimError> {
    run_observed(program, data, &mut |_| {})
}

/// One executed instruction, as `scpc sim --trace` prints it.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Step {
    /// Its index.
    pub pc: usize,
    /// A after it ran.
    pub a: u32,
    /// X after it ran.
    pub x: u32,
}

/// [`run`], and every instruction executed, in order (as `seccomp-tools emu` lists them).
pub fn run_traced(program: &Program, data: &SeccompData) -> (Result<Outcome, SimError>, Vec<Step>) {
    let mut steps = Vec::new();
    let result = run_observed(program, data, &mut |s| steps.push(s));
    (result, steps)
}

fn run_observed(program: &Program, data: &SeccompData, observe: &mut dyn FnMut(Step)) -> Result<Outcome, SimError> {
    let insns = &program.insns;
    if insns.is_empty() || insns.len() > BPF_MAXINSNS {
        return Err(SimError::BadLength(insns.len()));
    }
    let (mut a, mut x, mut pc) = (0u32, 0u32, 0usize);
    let mut mem = [None::<u32>; MEMWORDS as usize];
    let mut out = Outcome { ret: 0, executed: 0, taken: 0, read_args: false };
    loop {
        let insn = *insns.get(pc).ok_or(SimError::OutOfBounds { pc })?;
        out.executed += 1;
        let op = decode(&insn).ok_or(SimError::BadOpcode { pc, code: insn.code })?;
        operand_ok(pc, &op)?;
        let jump = |off: usize, out: &mut Outcome| -> Result<usize, SimError> {
            if off != 0 {
                out.taken += 1;
            }
            let to = pc + 1 + off;
            if to >= insns.len() {
                return Err(SimError::OutOfBounds { pc });
            }
            Ok(to)
        };
        let value = |s: Src, x: u32| match s {
            Src::K(k) => k,
            Src::X => x,
        };
        let mut next = pc + 1;
        match op {
            Op::LdAbs(k) => {
                a = data.word(k).ok_or(SimError::BadLoad { pc, offset: k })?;
                out.read_args |= k >= OFF_IP;
            }
            Op::LdImm(k) => a = k,
            Op::LdxImm(k) => x = k,
            Op::LdMem(k) => a = mem[k as usize].ok_or(SimError::UnsetMemory { pc, k })?,
            Op::LdxMem(k) => x = mem[k as usize].ok_or(SimError::UnsetMemory { pc, k })?,
            Op::St(k) => mem[k as usize] = Some(a),
            Op::Stx(k) => mem[k as usize] = Some(x),
            Op::Alu(op, s) => match alu(op, a, value(s, x)) {
                Some(v) => a = v,
                None => {
                    observe(Step { pc, a, x });
                    out.ret = 0;
                    return Ok(out);
                }
            },
            Op::Neg => a = a.wrapping_neg(),
            Op::Tax => x = a,
            Op::Txa => a = x,
            Op::Ja(k) => next = jump(k as usize, &mut out)?,
            Op::Jmp(op, s, jt, jf) => {
                let off = if test(op, a, value(s, x)) { jt } else { jf };
                next = jump(usize::from(off), &mut out)?;
            }
            Op::RetK(k) => {
                observe(Step { pc, a, x });
                out.ret = k;
                return Ok(out);
            }
            Op::RetA => {
                observe(Step { pc, a, x });
                out.ret = a;
                return Ok(out);
            }
        }
        observe(Step { pc, a, x });
        pc = next;
    }
}

/// The operand checks of `bpf_check_classic` and `seccomp_check_filter`.
fn operand_ok(pc: usize, op: &Op) -> Result<(), SimError> {
    match *op {
        Op::LdAbs(k) if k >= SECCOMP_DATA_LEN || k & 3 != 0 => Err(SimError::BadLoad { pc, offset: k }),
        Op::LdMem(k) | Op::LdxMem(k) | Op::St(k) | Op::Stx(k) if k >= MEMWORDS => Err(SimError::BadOperand { pc, k }),
        Op::Alu(AluOp::Lsh | AluOp::Rsh, Src::K(k)) if k >= 32 => Err(SimError::BadOperand { pc, k }),
        Op::Alu(AluOp::Div, Src::K(0)) => Err(SimError::BadOperand { pc, k: 0 }),
        _ => Ok(()),
    }
}

/// Checks a whole program as the kernel does when it is loaded, and refuses exactly what the
/// kernel refuses: a length outside 1..=BPF_MAXINSNS, an opcode seccomp does not take, an
/// operand out of range (a load outside `seccomp_data` or not 4-byte aligned, a scratch
/// word of 16 or more, a constant shift of 32 or more, a division by the constant 0), a jump
/// past the end, a last instruction that is not a `ret`, and a read of a scratch word that
/// some path reaches without storing it (the kernel's `check_load_and_stores`, followed to
/// the letter: it walks the instructions in order, and a jump's targets keep only the words
/// set on every jump to them).
pub fn check(program: &Program) -> Result<(), SimError> {
    use scpc_node::bpf::FilterError as F;
    // one checker for the whole workspace: the node program refuses with it what it will not
    // load, and `compiler/tests/sim_kernel.rs` holds it to the kernel's answers
    scpc_node::bpf::check(&program.insns).map_err(|e| match e {
        F::Size { bytes } => SimError::BadLength(bytes / 8),
        F::Length { count } => SimError::BadLength(count),
        F::Opcode { pc, code } => SimError::BadOpcode { pc, code },
        F::Load { pc, offset } => SimError::BadLoad { pc, offset },
        F::Jump { pc } | F::NoReturn { pc } => SimError::OutOfBounds { pc },
        F::DivisionByZero { pc } => SimError::BadOperand { pc, k: 0 },
        F::Shift { pc, k } | F::Scratch { pc, k } => SimError::BadOperand { pc, k },
        F::Uninitialized { pc, k } => SimError::UnsetMemory { pc, k },
    })
}

impl std::fmt::Display for SimError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SimError::BadOpcode { pc, code } => {
                write!(f, "instruction {pc} (byte {}): opcode {code:#06x} is not one seccomp filters use", pc * 8)
            }
            SimError::BadLoad { pc, offset } => {
                write!(f, "instruction {pc} (byte {}): load at offset {offset}, outside seccomp_data or not 4-byte aligned", pc * 8)
            }
            SimError::OutOfBounds { pc } => {
                write!(f, "instruction {pc} (byte {}): a path leaves the program (a jump past the end, or no `ret` at the end)", pc * 8)
            }
            SimError::BadLength(n) => {
                write!(f, "instruction {BPF_MAXINSNS} (byte {}): {n} instructions, but a filter has 1 to {BPF_MAXINSNS}", BPF_MAXINSNS * 8)
            }
            SimError::BadOperand { pc, k } => write!(
                f,
                "instruction {pc} (byte {}): operand {k} is out of range (scratch words 0..=15, shifts 0..=31, no division by 0)",
                pc * 8
            ),
            SimError::UnsetMemory { pc, k } => {
                write!(f, "instruction {pc} (byte {}): reads scratch word M[{k}], which a path reaches without storing it", pc * 8)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn insn(code: u16, jt: u8, jf: u8, k: u32) -> Insn {
        Insn { code, jt, jf, k }
    }

    #[test]
    fn runs_a_small_filter_and_counts() {
        // ld arch; jeq 1 ? next : kill; ld nr; jge 10 ? allow : errno
        let p = Program {
            insns: vec![
                Insn::ld(OFF_ARCH),
                Insn::jmp(BPF_JEQ, 1, 0, 3),
                Insn::ld(OFF_NR),
                Insn::jmp(BPF_JGE, 10, 0, 1),
                Insn::ret(0x7fff_0000),
                Insn::ret(0x0005_0001),
            ],
        };
        let data = |arch, nr| SeccompData { nr, arch, ..Default::default() };
        assert_eq!(run(&p, &data(1, 5)).map(|o| (o.ret, o.executed, o.taken)), Ok((0x0005_0001, 5, 1)));
        assert_eq!(run(&p, &data(1, 10)).map(|o| o.ret), Ok(0x7fff_0000));
        assert_eq!(run(&p, &data(2, 10)).map(|o| o.ret), Ok(0x0005_0001), "jf=3 skips to the last ret");
        let bad = Program { insns: vec![Insn::ld(64), Insn::ret(0)] };
        assert_eq!(run(&bad, &data(1, 1)), Err(SimError::BadLoad { pc: 0, offset: 64 }));
        let off_end = Program { insns: vec![Insn::ld(0)] };
        assert_eq!(run(&off_end, &data(1, 1)), Err(SimError::OutOfBounds { pc: 1 }));
    }

    #[test]
    fn words_are_little_endian_halves() {
        let d = SeccompData { args: [0x1111_2222_3333_4444, 0, 0, 0, 0, 0x5555_6666_7777_8888], ..Default::default() };
        assert_eq!(d.word(16), Some(0x3333_4444));
        assert_eq!(d.word(20), Some(0x1111_2222));
        assert_eq!(d.word(56), Some(0x7777_8888));
        assert_eq!(d.word(60), Some(0x5555_6666));
        assert_eq!(d.word(64), None);
        assert_eq!(d.word(18), None);
    }

    #[test]
    fn arithmetic_scratch_memory_and_ret_a() {
        // A = args[0].lo; X = 3; M[2] = X; A = A * X + 1; A = -A; A ^= M[2] via X; ret A
        let p = Program {
            insns: vec![
                Insn::ld(16),
                insn(0x01, 0, 0, 3),
                insn(0x03, 0, 0, 2),
                insn(0x2c, 0, 0, 0),
                insn(0x04, 0, 0, 1),
                Insn { code: 0x84, jt: 0, jf: 0, k: 0 },
                insn(0x61, 0, 0, 2),
                insn(0xac, 0, 0, 0),
                insn(0x16, 0, 0, 0),
            ],
        };
        assert_eq!(check(&p), Ok(()));
        let d = SeccompData { args: [5, 0, 0, 0, 0, 0], ..Default::default() };
        assert_eq!(run(&p, &d).map(|o| o.ret), Ok((5u32 * 3 + 1).wrapping_neg() ^ 3));
        // division by X = 0 returns 0
        let div = Program { insns: vec![insn(0x00, 0, 0, 7), insn(0x3c, 0, 0, 0), insn(0x06, 0, 0, 0x7fff_0000)] };
        assert_eq!(run(&div, &d).map(|o| o.ret), Ok(0));
        // shifts by X use its low 5 bits
        let sh = Program { insns: vec![insn(0x00, 0, 0, 5), insn(0x01, 0, 0, 33), insn(0x6c, 0, 0, 0), insn(0x16, 0, 0, 0)] };
        assert_eq!(run(&sh, &d).map(|o| o.ret), Ok(10));
    }

    #[test]
    fn check_refuses_what_the_kernel_refuses() {
        let ret = Insn::ret(0);
        let refused = |insns: Vec<Insn>| check(&Program { insns }).is_err();
        assert!(refused(vec![insn(0x94, 0, 0, 3), ret]), "mod");
        assert!(refused(vec![insn(0x28, 0, 0, 0), ret]), "ld h abs");
        assert!(refused(vec![insn(0x64, 0, 0, 32), ret]), "lsh #32");
        assert!(!refused(vec![insn(0x64, 0, 0, 31), ret]), "lsh #31");
        assert!(refused(vec![insn(0x34, 0, 0, 0), ret]), "div #0");
        assert!(refused(vec![insn(0x02, 0, 0, 16), ret]), "st M[16]");
        assert!(refused(vec![insn(0x60, 0, 0, 0), ret]), "ld M[0] before any store");
        assert!(!refused(vec![insn(0x02, 0, 0, 0), insn(0x60, 0, 0, 0), ret]), "ld M[0] after a store");
        // stored on one path only
        assert!(refused(vec![Insn::ld(0), Insn::jmp(BPF_JEQ, 1, 0, 1), insn(0x02, 0, 0, 0), insn(0x60, 0, 0, 0), ret]));
        assert!(refused(vec![Insn::ld(0)]), "no ret at the end");
        assert!(refused(vec![Insn::ja(1), ret]), "ja past the end");
        assert!(refused(vec![Insn::ld(62), ret]), "misaligned");
        assert!(!refused(vec![insn(0x80, 0, 0, 0), insn(0x81, 0, 0, 0), insn(0x16, 0, 0, 0)]), "ld len, ldx len, ret a");
    }
}
