//! Classic BPF as seccomp takes it: `struct sock_filter` records (linux/filter.h), the
//! instruction constants named as in linux/bpf_common.h, and the `struct seccomp_data`
//! offsets (linux/seccomp.h).

pub mod disasm;
pub mod sim;

// The record, the opcode constants and the `.bpf` file format are the node's: one
// definition for the compiler, the emulator and the loader.
pub use scpc_node::bpf::{
    Insn, BPF_A, BPF_ABS, BPF_ADD, BPF_ALU, BPF_AND, BPF_B, BPF_DIV, BPF_H, BPF_IMM, BPF_IND, BPF_JA, BPF_JEQ, BPF_JGE, BPF_JGT, BPF_JMP,
    BPF_JSET, BPF_K, BPF_LD, BPF_LDX, BPF_LEN, BPF_LSH, BPF_MAXINSNS, BPF_MEM, BPF_MEMWORDS, BPF_MISC, BPF_MOD, BPF_MSH, BPF_MUL, BPF_NEG,
    BPF_OR, BPF_RET, BPF_RSH, BPF_ST, BPF_STX, BPF_SUB, BPF_TAX, BPF_TXA, BPF_W, BPF_X, BPF_XOR,
};

/// `offsetof(struct seccomp_data, nr)`.
pub const OFF_NR: u32 = 0;
/// `offsetof(struct seccomp_data, arch)`.
pub const OFF_ARCH: u32 = 4;
/// `offsetof(struct seccomp_data, instruction_pointer)` (low half).
pub const OFF_IP: u32 = 8;
pub use crate::abi::{off_arg_hi, off_arg_lo};

/// A filter program as the kernel takes it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Program {
    /// The instructions.
    pub insns: Vec<Insn>,
}

impl Program {
    /// The `NAME.ARCH.bpf` bytes: 8 bytes per instruction, little-endian.
    pub fn to_bytes(&self) -> Vec<u8> {
        scpc_node::bpf::encode(&self.insns)
    }

    /// Reads `.bpf` bytes; `None` if the length is not a multiple of 8.
    pub fn from_bytes(bytes: &[u8]) -> Option<Program> {
        scpc_node::bpf::decode(bytes).map(|insns| Program { insns })
    }
}
