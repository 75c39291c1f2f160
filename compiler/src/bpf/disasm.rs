//! The text form of a filter: one instruction per line, jump targets as labels, loads and
//! returns named (`ld nr`, `ld args[2].lo`, `ret errno(13)`), AUDIT_ARCH values named.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use super::*;
use crate::abi::Arch;

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

/// The program as text with `L<n>:` labels at jump targets.
pub fn disasm(program: &Program) -> String {
    let insns = &program.insns;
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
    let label = |pc: usize| format!("L{pc}");
    let mut out = String::new();
    for (pc, i) in insns.iter().enumerate() {
        if targets.contains(&pc) {
            let _ = writeln!(out, "{}:", label(pc));
        }
        let text = match i.code {
            c if c == BPF_LD | BPF_W | BPF_ABS => format!("ld {}", field(i.k)),
            c if c == BPF_LD | BPF_W | BPF_MEM => format!("ld M[{}]", i.k),
            c if c == BPF_ST => format!("st M[{}]", i.k),
            c if c == BPF_ALU | BPF_AND | BPF_K => format!("and {:#x}", i.k),
            c if c == BPF_RET | BPF_K => format!("ret {}", ret_name(i.k)),
            c if c == BPF_JMP | BPF_JA => format!("ja {}", label(pc + 1 + i.k as usize)),
            c if c & 0x07 == BPF_JMP => {
                let op = match c & 0xf0 {
                    BPF_JEQ => "jeq",
                    BPF_JGT => "jgt",
                    BPF_JGE => "jge",
                    BPF_JSET => "jset",
                    _ => "j?",
                };
                let (t, f) = (pc + 1 + i.jt as usize, pc + 1 + i.jf as usize);
                match (i.jt, i.jf) {
                    (_, 0) => format!("{op} {}, {}", constant(i.k), label(t)),
                    (0, _) => format!("{op} {}, next, {}", constant(i.k), label(f)),
                    _ => format!("{op} {}, {}, {}", constant(i.k), label(t), label(f)),
                }
            }
            c => format!(".insn code={c:#06x} jt={} jf={} k={:#x}", i.jt, i.jf, i.k),
        };
        let _ = writeln!(out, "  {pc:4}  {text}");
    }
    out
}
