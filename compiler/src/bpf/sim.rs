//! An emulator of classic seccomp BPF, written from the kernel's rules (net/core/filter.c and
//! kernel/seccomp.c's checker) and independent of scpc's code generator: it is one of the two
//! judges every build is checked by. It refuses what the kernel would refuse: unknown
//! opcodes, jumps past the end, loads outside `seccomp_data`, falling off the end.

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

/// Runs a program on one input.
pub fn run(program: &Program, data: &SeccompData) -> Result<Outcome, SimError> {
    let insns = &program.insns;
    if insns.is_empty() || insns.len() > BPF_MAXINSNS {
        return Err(SimError::BadLength(insns.len()));
    }
    let (mut a, mut pc) = (0u32, 0usize);
    let mut out = Outcome { ret: 0, executed: 0, taken: 0, read_args: false };
    loop {
        let insn = *insns.get(pc).ok_or(SimError::OutOfBounds { pc })?;
        out.executed += 1;
        let next = |off: u32, out: &mut Outcome| -> Result<usize, SimError> {
            if off != 0 {
                out.taken += 1;
            }
            let to = pc + 1 + off as usize;
            if to >= insns.len() {
                return Err(SimError::OutOfBounds { pc });
            }
            Ok(to)
        };
        pc = match insn.code {
            c if c == BPF_LD | BPF_W | BPF_ABS => {
                a = data.word(insn.k).ok_or(SimError::BadLoad { pc, offset: insn.k })?;
                out.read_args |= insn.k >= OFF_IP;
                pc + 1
            }
            c if c == BPF_ALU | BPF_AND | BPF_K => {
                a &= insn.k;
                pc + 1
            }
            c if c == BPF_RET | BPF_K => {
                out.ret = insn.k;
                return Ok(out);
            }
            c if c == BPF_JMP | BPF_JA => next(insn.k, &mut out)?,
            c if c & 0x07 == BPF_JMP && c & 0x08 == BPF_K => {
                let cond = match c & 0xf0 {
                    BPF_JEQ => a == insn.k,
                    BPF_JGT => a > insn.k,
                    BPF_JGE => a >= insn.k,
                    BPF_JSET => a & insn.k != 0,
                    _ => return Err(SimError::BadOpcode { pc, code: c }),
                };
                next(u32::from(if cond { insn.jt } else { insn.jf }), &mut out)?
            }
            c => return Err(SimError::BadOpcode { pc, code: c }),
        };
    }
}

/// Checks a whole program before it runs, as the kernel's checker does at load time (and
/// within what this emulator knows): a length within 1..=BPF_MAXINSNS, known opcodes, loads
/// inside `seccomp_data`, jumps that land inside the program, and a `ret` at the end, so that
/// no path runs off it.
pub fn check(program: &Program) -> Result<(), SimError> {
    let insns = &program.insns;
    if insns.is_empty() || insns.len() > BPF_MAXINSNS {
        return Err(SimError::BadLength(insns.len()));
    }
    for (pc, insn) in insns.iter().enumerate() {
        let land = |off: usize| if pc + 1 + off < insns.len() { Ok(()) } else { Err(SimError::OutOfBounds { pc }) };
        match insn.code {
            c if c == BPF_LD | BPF_W | BPF_ABS => {
                if SeccompData::default().word(insn.k).is_none() {
                    return Err(SimError::BadLoad { pc, offset: insn.k });
                }
            }
            c if c == BPF_ALU | BPF_AND | BPF_K || c == BPF_RET | BPF_K => {}
            c if c == BPF_JMP | BPF_JA => land(insn.k as usize)?,
            c if c & 0x07 == BPF_JMP && c & 0x08 == BPF_K && matches!(c & 0xf0, BPF_JEQ | BPF_JGT | BPF_JGE | BPF_JSET) => {
                land(usize::from(insn.jt))?;
                land(usize::from(insn.jf))?;
            }
            c => return Err(SimError::BadOpcode { pc, code: c }),
        }
    }
    match insns.last() {
        Some(i) if i.code == BPF_RET | BPF_K => Ok(()),
        _ => Err(SimError::OutOfBounds { pc: insns.len() - 1 }),
    }
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
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
