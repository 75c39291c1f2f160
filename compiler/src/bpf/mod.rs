//! Classic BPF as seccomp takes it: `struct sock_filter` records (linux/filter.h), the
//! instruction constants named as in linux/bpf_common.h, and the `struct seccomp_data`
//! offsets (linux/seccomp.h).

pub mod disasm;
pub mod sim;

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

/// Instruction classes and fields (linux/bpf_common.h).
pub const BPF_LD: u16 = 0x00;
/// ALU class.
pub const BPF_ALU: u16 = 0x04;
/// Jump class.
pub const BPF_JMP: u16 = 0x05;
/// Return class.
pub const BPF_RET: u16 = 0x06;
/// Word size.
pub const BPF_W: u16 = 0x00;
/// Absolute offset.
pub const BPF_ABS: u16 = 0x20;
/// `&` in ALU.
pub const BPF_AND: u16 = 0x50;
/// Unconditional jump.
pub const BPF_JA: u16 = 0x00;
/// Jump if A == k.
pub const BPF_JEQ: u16 = 0x10;
/// Jump if A > k (unsigned).
pub const BPF_JGT: u16 = 0x20;
/// Jump if A >= k (unsigned).
pub const BPF_JGE: u16 = 0x30;
/// Jump if A & k != 0.
pub const BPF_JSET: u16 = 0x40;
/// Operand is the constant k.
pub const BPF_K: u16 = 0x00;

/// At most this many instructions per filter (BPF_MAXINSNS).
pub const BPF_MAXINSNS: usize = 4096;

/// `offsetof(struct seccomp_data, nr)`.
pub const OFF_NR: u32 = 0;
/// `offsetof(struct seccomp_data, arch)`.
pub const OFF_ARCH: u32 = 4;
/// `offsetof(struct seccomp_data, instruction_pointer)` (low half).
pub const OFF_IP: u32 = 8;
/// Offset of the low half of `args[i]` (little-endian).
pub fn off_arg_lo(i: u8) -> u32 {
    16 + 8 * i as u32
}
/// Offset of the high half of `args[i]` (little-endian).
pub fn off_arg_hi(i: u8) -> u32 {
    20 + 8 * i as u32
}

impl Insn {
    /// `ld [k]`.
    pub fn ld(offset: u32) -> Insn {
        Insn { code: BPF_LD | BPF_W | BPF_ABS, jt: 0, jf: 0, k: offset }
    }
    /// `and #k`.
    pub fn and(k: u32) -> Insn {
        Insn { code: BPF_ALU | BPF_AND | BPF_K, jt: 0, jf: 0, k }
    }
    /// A conditional jump (`op` is BPF_JEQ, BPF_JGT, BPF_JGE or BPF_JSET).
    pub fn jmp(op: u16, k: u32, jt: u8, jf: u8) -> Insn {
        Insn { code: BPF_JMP | op | BPF_K, jt, jf, k }
    }
    /// `ja +k`.
    pub fn ja(k: u32) -> Insn {
        Insn { code: BPF_JMP | BPF_JA, jt: 0, jf: 0, k }
    }
    /// `ret #k`.
    pub fn ret(k: u32) -> Insn {
        Insn { code: BPF_RET | BPF_K, jt: 0, jf: 0, k }
    }
}

/// A filter program as the kernel takes it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Program {
    /// The instructions.
    pub insns: Vec<Insn>,
}

impl Program {
    /// The `NAME.ARCH.bpf` bytes: 8 bytes per instruction, little-endian.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.insns.len() * 8);
        for i in &self.insns {
            out.extend_from_slice(&i.code.to_le_bytes());
            out.push(i.jt);
            out.push(i.jf);
            out.extend_from_slice(&i.k.to_le_bytes());
        }
        out
    }

    /// Reads `.bpf` bytes; `None` if the length is not a multiple of 8.
    pub fn from_bytes(bytes: &[u8]) -> Option<Program> {
        if !bytes.len().is_multiple_of(8) {
            return None;
        }
        let insns = bytes
            .chunks_exact(8)
            .map(|c| Insn { code: u16::from_le_bytes([c[0], c[1]]), jt: c[2], jf: c[3], k: u32::from_le_bytes([c[4], c[5], c[6], c[7]]) })
            .collect();
        Some(Program { insns })
    }
}
