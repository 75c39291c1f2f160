//! Classic BPF as seccomp takes it: the `struct sock_filter` record (linux/filter.h), the
//! instruction constants named as in linux/bpf_common.h, the `.bpf` file format (8-byte
//! little-endian records), and the checks the kernel makes before it loads a filter
//! ([`check`]: `bpf_check_classic` in net/core/filter.c, then `seccomp_check_filter` in
//! kernel/seccomp.c). A file that passes [`check`] is one the kernel accepts; the loader
//! refuses every other one before anything runs.

use std::fmt;

/// `struct sock_filter { __u16 code; __u8 jt; __u8 jf; __u32 k; }`.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
#[repr(C)]
pub struct Insn {
    /// Opcode.
    pub code: u16,
    /// Jump offset if true.
    pub jt: u8,
    /// Jump offset if false.
    pub jf: u8,
    /// Operand.
    pub k: u32,
}

/// Load into A (class).
pub const BPF_LD: u16 = 0x00;
/// Load into X (class).
pub const BPF_LDX: u16 = 0x01;
/// Store A into scratch memory (class).
pub const BPF_ST: u16 = 0x02;
/// Store X into scratch memory (class).
pub const BPF_STX: u16 = 0x03;
/// ALU class.
pub const BPF_ALU: u16 = 0x04;
/// Jump class.
pub const BPF_JMP: u16 = 0x05;
/// Return class.
pub const BPF_RET: u16 = 0x06;
/// Miscellaneous class (`tax`, `txa`).
pub const BPF_MISC: u16 = 0x07;
/// Word size.
pub const BPF_W: u16 = 0x00;
/// Half-word size.
pub const BPF_H: u16 = 0x08;
/// Byte size.
pub const BPF_B: u16 = 0x10;
/// Immediate operand (load mode).
pub const BPF_IMM: u16 = 0x00;
/// Absolute offset (load mode).
pub const BPF_ABS: u16 = 0x20;
/// Indirect offset (load mode).
pub const BPF_IND: u16 = 0x40;
/// Scratch memory (load mode).
pub const BPF_MEM: u16 = 0x60;
/// Packet length (load mode): for seccomp, `sizeof(struct seccomp_data)`.
pub const BPF_LEN: u16 = 0x80;
/// IP header length (load mode; not for seccomp).
pub const BPF_MSH: u16 = 0xa0;
/// `+` in ALU.
pub const BPF_ADD: u16 = 0x00;
/// `-` in ALU.
pub const BPF_SUB: u16 = 0x10;
/// `*` in ALU.
pub const BPF_MUL: u16 = 0x20;
/// `/` in ALU.
pub const BPF_DIV: u16 = 0x30;
/// `|` in ALU.
pub const BPF_OR: u16 = 0x40;
/// `&` in ALU.
pub const BPF_AND: u16 = 0x50;
/// `<<` in ALU.
pub const BPF_LSH: u16 = 0x60;
/// `>>` in ALU.
pub const BPF_RSH: u16 = 0x70;
/// Negation in ALU.
pub const BPF_NEG: u16 = 0x80;
/// `%` in ALU (not for seccomp).
pub const BPF_MOD: u16 = 0x90;
/// `^` in ALU.
pub const BPF_XOR: u16 = 0xa0;
/// Unconditional jump.
pub const BPF_JA: u16 = 0x00;
/// Jump if A == operand.
pub const BPF_JEQ: u16 = 0x10;
/// Jump if A > operand (unsigned).
pub const BPF_JGT: u16 = 0x20;
/// Jump if A >= operand (unsigned).
pub const BPF_JGE: u16 = 0x30;
/// Jump if A & operand != 0.
pub const BPF_JSET: u16 = 0x40;
/// Operand is the constant k.
pub const BPF_K: u16 = 0x00;
/// Operand is X.
pub const BPF_X: u16 = 0x08;
/// Return A.
pub const BPF_A: u16 = 0x10;
/// `tax`: X = A.
pub const BPF_TAX: u16 = 0x00;
/// `txa`: A = X.
pub const BPF_TXA: u16 = 0x80;

/// At most this many instructions per filter (BPF_MAXINSNS).
pub const BPF_MAXINSNS: usize = 4096;
/// Scratch memory words (BPF_MEMWORDS).
pub const BPF_MEMWORDS: u32 = 16;
/// `sizeof(struct seccomp_data)`.
pub const SECCOMP_DATA_SIZE: u32 = 64;
/// `offsetof(struct seccomp_data, arch)`.
pub const OFF_ARCH: u32 = 4;

impl Insn {
    /// `ld [k]`: a word of `seccomp_data`.
    pub const fn ld(offset: u32) -> Insn {
        Insn { code: BPF_LD | BPF_W | BPF_ABS, jt: 0, jf: 0, k: offset }
    }
    /// `and #k`.
    pub const fn and(k: u32) -> Insn {
        Insn { code: BPF_ALU | BPF_AND | BPF_K, jt: 0, jf: 0, k }
    }
    /// A conditional jump on the constant `k` (`op` is BPF_JEQ, BPF_JGT, BPF_JGE or BPF_JSET).
    pub const fn jmp(op: u16, k: u32, jt: u8, jf: u8) -> Insn {
        Insn { code: BPF_JMP | op | BPF_K, jt, jf, k }
    }
    /// `ja +k`.
    pub const fn ja(k: u32) -> Insn {
        Insn { code: BPF_JMP | BPF_JA, jt: 0, jf: 0, k }
    }
    /// `ret #k`.
    pub const fn ret(k: u32) -> Insn {
        Insn { code: BPF_RET | BPF_K, jt: 0, jf: 0, k }
    }
}

/// The `.bpf` bytes of a program: 8 bytes per instruction, little-endian.
pub fn encode(insns: &[Insn]) -> Vec<u8> {
    let mut out = Vec::with_capacity(insns.len() * 8);
    for i in insns {
        out.extend_from_slice(&i.code.to_le_bytes());
        out.push(i.jt);
        out.push(i.jf);
        out.extend_from_slice(&i.k.to_le_bytes());
    }
    out
}

/// Reads `.bpf` bytes; `None` if the length is not a multiple of 8.
pub fn decode(bytes: &[u8]) -> Option<Vec<Insn>> {
    if !bytes.len().is_multiple_of(8) {
        return None;
    }
    let insns = bytes
        .chunks_exact(8)
        .map(|c| Insn { code: u16::from_le_bytes([c[0], c[1]]), jt: c[2], jf: c[3], k: u32::from_le_bytes([c[4], c[5], c[6], c[7]]) })
        .collect();
    Some(insns)
}

/// Why the kernel would refuse a filter.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum FilterError {
    /// The file's size is not a multiple of 8 bytes.
    Size {
        /// The size in bytes.
        bytes: usize,
    },
    /// No instructions, or more than [`BPF_MAXINSNS`].
    Length {
        /// How many there are.
        count: usize,
    },
    /// An opcode seccomp does not accept.
    Opcode {
        /// Where.
        pc: usize,
        /// The opcode.
        code: u16,
    },
    /// A load outside `seccomp_data` or not 4-byte aligned.
    Load {
        /// Where.
        pc: usize,
        /// The offset.
        offset: u32,
    },
    /// A jump past the end.
    Jump {
        /// Where.
        pc: usize,
    },
    /// A division by the constant 0.
    DivisionByZero {
        /// Where.
        pc: usize,
    },
    /// A shift by 32 or more.
    Shift {
        /// Where.
        pc: usize,
        /// The shift.
        k: u32,
    },
    /// A scratch memory word past the 16 there are.
    Scratch {
        /// Where.
        pc: usize,
        /// The word.
        k: u32,
    },
    /// A read of a scratch word that some path has not written.
    Uninitialized {
        /// Where.
        pc: usize,
        /// The word.
        k: u32,
    },
    /// The last instruction is not a `ret`: a path runs off the end.
    NoReturn {
        /// The last instruction.
        pc: usize,
    },
}

impl FilterError {
    /// The error's stable code.
    pub fn code(&self) -> &'static str {
        match self {
            FilterError::Size { .. } => "scpc::node::filter::size",
            FilterError::Length { .. } => "scpc::node::filter::length",
            FilterError::Opcode { .. } => "scpc::node::filter::opcode",
            FilterError::Load { .. } => "scpc::node::filter::load",
            FilterError::Jump { .. } => "scpc::node::filter::jump",
            FilterError::DivisionByZero { .. } => "scpc::node::filter::division_by_zero",
            FilterError::Shift { .. } => "scpc::node::filter::shift",
            FilterError::Scratch { .. } => "scpc::node::filter::scratch",
            FilterError::Uninitialized { .. } => "scpc::node::filter::uninitialized",
            FilterError::NoReturn { .. } => "scpc::node::filter::no_return",
        }
    }

    /// What to do about it.
    pub fn help(&self) -> &'static str {
        match self {
            FilterError::Size { .. } => "a .bpf file holds 8-byte struct sock_filter records, as `scpc build` writes them",
            FilterError::Length { count: 0 } => "build a filter with `scpc build FILE --policy NAME`",
            _ => "the kernel would refuse this filter; rebuild it with `scpc build` (see it with `scpc disasm`)",
        }
    }
}

impl fmt::Display for FilterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at = |pc: &usize| format!("instruction {pc} (byte {})", pc * 8);
        match self {
            FilterError::Size { bytes } => {
                write!(f, "byte {}: not a filter: its size ({bytes} bytes) is not a multiple of 8", bytes / 8 * 8)
            }
            FilterError::Length { count: 0 } => write!(f, "byte 0: the file is empty"),
            FilterError::Length { count } => {
                write!(f, "byte {}: {count} instructions, but a filter has 1 to {BPF_MAXINSNS}", BPF_MAXINSNS * 8)
            }
            FilterError::Opcode { pc, code } => write!(f, "{}: opcode {code:#06x} is not one seccomp filters use", at(pc)),
            FilterError::Load { pc, offset } => {
                write!(f, "{}: load at offset {offset}, outside seccomp_data or not 4-byte aligned", at(pc))
            }
            FilterError::Jump { pc } => write!(f, "{}: the jump lands past the end of the program", at(pc)),
            FilterError::DivisionByZero { pc } => write!(f, "{}: division by the constant 0", at(pc)),
            FilterError::Shift { pc, k } => write!(f, "{}: shift by {k}, but at most 31", at(pc)),
            FilterError::Scratch { pc, k } => write!(f, "{}: scratch word {k}, but there are {BPF_MEMWORDS}", at(pc)),
            FilterError::Uninitialized { pc, k } => write!(f, "{}: reads scratch word {k}, which a path to it has not written", at(pc)),
            FilterError::NoReturn { pc } => write!(f, "{}: the last instruction is not a `ret`, so a path runs off the end", at(pc)),
        }
    }
}

impl std::error::Error for FilterError {}

/// The opcodes seccomp accepts (`seccomp_check_filter`'s list, after `bpf_check_classic`'s).
fn accepted(code: u16) -> bool {
    const ALU_OPS: [u16; 9] = [BPF_ADD, BPF_SUB, BPF_MUL, BPF_DIV, BPF_AND, BPF_OR, BPF_XOR, BPF_LSH, BPF_RSH];
    const JUMPS: [u16; 4] = [BPF_JEQ, BPF_JGE, BPF_JGT, BPF_JSET];
    const OTHERS: [u16; 13] = [
        BPF_LD | BPF_W | BPF_ABS,
        BPF_LD | BPF_W | BPF_LEN,
        BPF_LDX | BPF_W | BPF_LEN,
        BPF_RET | BPF_K,
        BPF_RET | BPF_A,
        BPF_LD | BPF_IMM,
        BPF_LDX | BPF_IMM,
        BPF_MISC | BPF_TAX,
        BPF_MISC | BPF_TXA,
        BPF_LD | BPF_MEM,
        BPF_LDX | BPF_MEM,
        BPF_ST,
        BPF_STX,
    ];
    // an opcode is class (bits 0-2) | operand source K or X (bit 3) | operation (bits 4-7)
    let (op, from_x) = (code & 0xf0, code & BPF_X != 0);
    match code & 0x07 {
        _ if code > 0xff => false,
        BPF_ALU if op == BPF_NEG => !from_x,
        BPF_ALU => ALU_OPS.contains(&op),
        BPF_JMP if op == BPF_JA => !from_x,
        BPF_JMP => JUMPS.contains(&op),
        _ => OTHERS.contains(&code),
    }
}

fn is_conditional_jump(code: u16) -> bool {
    code & 0x07 == BPF_JMP && code != BPF_JMP | BPF_JA
}

/// Checks a program as the kernel does before loading it: 1 to [`BPF_MAXINSNS`] instructions,
/// only the opcodes seccomp accepts, loads of aligned words inside `seccomp_data`, no
/// division by the constant 0 or shift by 32 or more, scratch words below 16 and written on
/// every path before they are read, jumps that land inside the program, and a `ret` last.
pub fn check(insns: &[Insn]) -> Result<(), FilterError> {
    let len = insns.len();
    if len == 0 || len > BPF_MAXINSNS {
        return Err(FilterError::Length { count: len });
    }
    for (pc, i) in insns.iter().enumerate() {
        if !accepted(i.code) {
            return Err(FilterError::Opcode { pc, code: i.code });
        }
        let lands = |off: usize| pc + 1 + off < len;
        match i.code {
            c if c == BPF_LD | BPF_W | BPF_ABS && (i.k >= SECCOMP_DATA_SIZE || i.k & 3 != 0) => {
                return Err(FilterError::Load { pc, offset: i.k })
            }
            c if c == BPF_ALU | BPF_DIV | BPF_K && i.k == 0 => return Err(FilterError::DivisionByZero { pc }),
            c if (c == BPF_ALU | BPF_LSH | BPF_K || c == BPF_ALU | BPF_RSH | BPF_K) && i.k >= 32 => {
                return Err(FilterError::Shift { pc, k: i.k })
            }
            c if [BPF_LD | BPF_MEM, BPF_LDX | BPF_MEM, BPF_ST, BPF_STX].contains(&c) && i.k >= BPF_MEMWORDS => {
                return Err(FilterError::Scratch { pc, k: i.k })
            }
            c if c == BPF_JMP | BPF_JA && !lands(i.k as usize) => return Err(FilterError::Jump { pc }),
            c if is_conditional_jump(c) && !(lands(i.jt.into()) && lands(i.jf.into())) => return Err(FilterError::Jump { pc }),
            _ => {}
        }
    }
    if !matches!(insns[len - 1].code, c if c == BPF_RET | BPF_K || c == BPF_RET | BPF_A) {
        return Err(FilterError::NoReturn { pc: len - 1 });
    }
    check_scratch(insns)
}

/// The kernel's `check_load_and_stores`: a scratch word is read only where every path to the
/// read has written it (jumps only go forward, so one pass in program order suffices).
fn check_scratch(insns: &[Insn]) -> Result<(), FilterError> {
    let mut masks = vec![u16::MAX; insns.len()];
    let mut valid: u16 = 0;
    for (pc, i) in insns.iter().enumerate() {
        valid &= masks[pc];
        match i.code {
            c if c == BPF_ST || c == BPF_STX => valid |= 1 << i.k,
            c if (c == BPF_LD | BPF_MEM || c == BPF_LDX | BPF_MEM) && valid & (1 << i.k) == 0 => {
                return Err(FilterError::Uninitialized { pc, k: i.k })
            }
            c if c == BPF_JMP | BPF_JA => {
                masks[pc + 1 + i.k as usize] &= valid;
                valid = u16::MAX;
            }
            c if is_conditional_jump(c) => {
                masks[pc + 1 + i.jt as usize] &= valid;
                masks[pc + 1 + i.jf as usize] &= valid;
                valid = u16::MAX;
            }
            _ => {}
        }
    }
    Ok(())
}

/// Whether the program loads `seccomp_data.arch` and compares it with `audit_arch`
/// (`ld [4]` followed by `jeq #AUDIT_ARCH`, with nothing loaded into A between them in
/// program order): the mark of a filter that has code for that architecture.
pub fn compares_arch(insns: &[Insn], audit_arch: u32) -> bool {
    let mut holds_arch = false;
    for i in insns {
        match i.code & 0x07 {
            BPF_LD => holds_arch = i.code == BPF_LD | BPF_W | BPF_ABS && i.k == OFF_ARCH,
            BPF_ALU => holds_arch = false,
            BPF_MISC if i.code == BPF_MISC | BPF_TXA => holds_arch = false,
            BPF_JMP if holds_arch && i.code == BPF_JMP | BPF_JEQ | BPF_K && i.k == audit_arch => return true,
            _ => {}
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALLOW: Insn = Insn::ret(0x7fff_0000);

    fn insn(code: u16, jt: u8, jf: u8, k: u32) -> Insn {
        Insn { code, jt, jf, k }
    }

    #[test]
    fn bytes_round_trip() {
        let p = vec![Insn::ld(4), Insn::jmp(BPF_JEQ, 0xc000_003e, 1, 0), Insn::ret(0), ALLOW];
        assert_eq!(decode(&encode(&p)), Some(p));
        assert_eq!(decode(&[0; 7]), None);
    }

    #[test]
    fn what_the_kernel_accepts_passes() {
        // every opcode family seccomp takes: scratch memory, X, ALU on X, ret A
        let p = vec![
            Insn::ld(0),
            insn(BPF_ST, 0, 0, 3),
            insn(BPF_LDX | BPF_IMM, 0, 0, 2),
            insn(BPF_ALU | BPF_ADD | BPF_X, 0, 0, 0),
            insn(BPF_ALU | BPF_RSH | BPF_K, 0, 0, 31),
            insn(BPF_JMP | BPF_JGT | BPF_X, 1, 0, 0),
            insn(BPF_LD | BPF_MEM, 0, 0, 3),
            insn(BPF_MISC | BPF_TAX, 0, 0, 0),
            insn(BPF_LD | BPF_W | BPF_LEN, 0, 0, 0),
            insn(BPF_RET | BPF_A, 0, 0, 0),
        ];
        assert_eq!(check(&p), Ok(()));
    }

    #[test]
    fn what_the_kernel_refuses_is_refused() {
        let cases: Vec<(Vec<Insn>, FilterError)> = vec![
            (vec![], FilterError::Length { count: 0 }),
            (vec![ALLOW; BPF_MAXINSNS + 1], FilterError::Length { count: BPF_MAXINSNS + 1 }),
            (vec![insn(BPF_LD | BPF_H | BPF_ABS, 0, 0, 0), ALLOW], FilterError::Opcode { pc: 0, code: 0x28 }),
            (vec![insn(BPF_ALU | BPF_MOD | BPF_K, 0, 0, 3), ALLOW], FilterError::Opcode { pc: 0, code: 0x94 }),
            (vec![insn(BPF_ALU | BPF_NEG | BPF_X, 0, 0, 0), ALLOW], FilterError::Opcode { pc: 0, code: 0x8c }),
            (vec![Insn::ld(64), ALLOW], FilterError::Load { pc: 0, offset: 64 }),
            (vec![Insn::ld(18), ALLOW], FilterError::Load { pc: 0, offset: 18 }),
            (vec![insn(BPF_ALU | BPF_DIV | BPF_K, 0, 0, 0), ALLOW], FilterError::DivisionByZero { pc: 0 }),
            (vec![insn(BPF_ALU | BPF_LSH | BPF_K, 0, 0, 32), ALLOW], FilterError::Shift { pc: 0, k: 32 }),
            (vec![insn(BPF_ST, 0, 0, 16), ALLOW], FilterError::Scratch { pc: 0, k: 16 }),
            (vec![Insn::ja(1), ALLOW], FilterError::Jump { pc: 0 }),
            (vec![Insn::jmp(BPF_JEQ, 0, 0, 1), ALLOW], FilterError::Jump { pc: 0 }),
            (vec![ALLOW, Insn::ld(0)], FilterError::NoReturn { pc: 1 }),
            (vec![insn(BPF_LD | BPF_MEM, 0, 0, 0), ALLOW], FilterError::Uninitialized { pc: 0, k: 0 }),
            // written on one path only: `jeq` skips the store
            (
                vec![Insn::ld(0), Insn::jmp(BPF_JEQ, 1, 1, 0), insn(BPF_ST, 0, 0, 5), insn(BPF_LD | BPF_MEM, 0, 0, 5), ALLOW],
                FilterError::Uninitialized { pc: 3, k: 5 },
            ),
        ];
        for (p, want) in cases {
            assert_eq!(check(&p), Err(want), "{p:?}");
            assert!(!want.to_string().is_empty() && want.code().starts_with("scpc::node::filter::"));
        }
    }

    #[test]
    fn the_arch_mark_is_a_compare_of_the_loaded_arch() {
        let x86 = 0xc000_003e;
        let good = [Insn::ld(4), Insn::jmp(BPF_JEQ, x86, 1, 0), Insn::ret(0), ALLOW];
        assert!(compares_arch(&good, x86));
        assert!(!compares_arch(&good, 0xc000_00b7));
        // the same constant compared with the syscall number is not the mark
        let nr = [Insn::ld(0), Insn::jmp(BPF_JEQ, x86, 1, 0), Insn::ret(0), ALLOW];
        assert!(!compares_arch(&nr, x86));
        let masked = [Insn::ld(4), Insn::and(0xff), Insn::jmp(BPF_JEQ, x86, 1, 0), Insn::ret(0), ALLOW];
        assert!(!compares_arch(&masked, x86));
    }
}
