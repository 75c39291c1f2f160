//! The BPF emulator against this machine's kernel: every opcode `check` accepts the kernel
//! loads and every one it refuses the kernel refuses; random programs over the whole
//! instruction set (loads, scratch memory, every ALU operation with a constant and with X,
//! neg, tax/txa, every jump) return what the emulator computes. Filters are loaded into a
//! forked child (`scpc_node::loader::probe`) that makes raw calls of a number no syscall has, so
//! nothing is executed; the value a program computes is observed 12 bits at a time as the
//! errno its call returns. The programs are proven against their emulation too: the
//! decision procedure's diagram of each equals the emulator on the calls made.

use scpc::bpf::sim::{check, run, SeccompData};
use scpc::bpf::{Insn, Program};
/// The node crate's loader probe, on a [`Program`].
fn probe(p: &Program, calls: &[(u32, [u64; 6])]) -> std::io::Result<Vec<i32>> {
    scpc_node::loader::probe(&p.insns, calls)
}

/// A number no syscall has: an allowed call of it would return ENOSYS.
const NR: u32 = 1000;

/// `ld nr; jeq NR, body, allow` then `body`: the probe's own write and exit pass.
fn wrapped(body: &[Insn]) -> Program {
    let mut insns = vec![Insn::ld(0), Insn::jmp(0x10, NR, 1, 0), Insn::ret(0x7fff_0000)];
    insns.extend_from_slice(body);
    Program { insns }
}

fn loads(p: &Program) -> bool {
    probe(p, &[]).is_ok()
}

fn insn(code: u16, jt: u8, jf: u8, k: u32) -> Insn {
    Insn { code, jt, jf, k }
}

#[test]
fn the_kernel_accepts_exactly_the_opcodes_check_accepts() {
    let mut accepted = 0;
    for code in (0u16..=0xff).chain([0x100, 0x120, 0x8006, 0xff16]) {
        // k = 1 keeps division and shift operands valid; then a ret for the last insn
        let body =
            [insn(0x02, 0, 0, 0), insn(code, 0, 0, if code & 0x07 == 0x00 && code & 0xe0 == 0x20 { 4 } else { 1 }), Insn::ret(0x0005_0000)];
        let p = wrapped(&body);
        let (ours, kernel) = (check(&p).is_ok(), loads(&p));
        assert_eq!(ours, kernel, "opcode {code:#06x}: check says {ours}, the kernel {kernel}");
        accepted += usize::from(kernel);
    }
    println!("{accepted} opcodes accepted by both");
    // operands and structure
    let cases: Vec<(&str, Vec<Insn>)> = vec![
        ("ld [60]", vec![Insn::ld(60), Insn::ret(0)]),
        ("ld [64]", vec![Insn::ld(64), Insn::ret(0)]),
        ("ld [18]", vec![Insn::ld(18), Insn::ret(0)]),
        ("st M[15]", vec![insn(0x02, 0, 0, 15), Insn::ret(0)]),
        ("st M[16]", vec![insn(0x02, 0, 0, 16), Insn::ret(0)]),
        ("lsh #31", vec![insn(0x64, 0, 0, 31), Insn::ret(0)]),
        ("lsh #32", vec![insn(0x64, 0, 0, 32), Insn::ret(0)]),
        ("rsh #32", vec![insn(0x74, 0, 0, 32), Insn::ret(0)]),
        ("div #0", vec![insn(0x34, 0, 0, 0), Insn::ret(0)]),
        ("ld M[3] unset", vec![insn(0x60, 0, 0, 3), Insn::ret(0)]),
        ("ld M[3] after st", vec![insn(0x02, 0, 0, 3), insn(0x60, 0, 0, 3), Insn::ret(0)]),
        ("st on one path", vec![Insn::ld(16), Insn::jmp(0x10, 1, 0, 1), insn(0x02, 0, 0, 3), insn(0x60, 0, 0, 3), Insn::ret(0)]),
        (
            "st on both paths",
            vec![Insn::ld(16), Insn::jmp(0x10, 1, 1, 0), insn(0x02, 0, 0, 3), insn(0x02, 0, 0, 3), insn(0x60, 0, 0, 3), Insn::ret(0)],
        ),
        ("ja past the end", vec![Insn::ja(1), Insn::ret(0)]),
        ("jeq past the end", vec![Insn::jmp(0x10, 0, 1, 0), Insn::ret(0)]),
        ("no ret at the end", vec![Insn::ret(0), Insn::ld(0)]),
        ("ret a at the end", vec![insn(0x16, 0, 0, 0)]),
    ];
    for (what, body) in cases {
        let p = wrapped(&body);
        assert_eq!(check(&p).is_ok(), loads(&p), "{what}");
    }
    // a division by X = 0 returns 0 (SECCOMP_RET_KILL_THREAD): the child is killed
    let div0 = wrapped(&[insn(0x01, 0, 0, 0), insn(0x00, 0, 0, 7), insn(0x3c, 0, 0, 0), Insn::ret(0x0005_0001)]);
    let data = SeccompData { nr: NR, ..Default::default() };
    assert_eq!(run(&div0, &data).map(|o| o.ret), Ok(0));
    assert!(probe(&div0, &[(NR, [0; 6])]).is_err(), "the kernel kills the caller");
    let long = Program { insns: vec![Insn::ret(0x7fff_0000); 4097] };
    assert!(check(&long).is_err() && !loads(&long), "4097 instructions");
    let max = Program { insns: vec![Insn::ret(0x7fff_0000); 4096] };
    assert!(check(&max).is_ok() && loads(&max), "4096 instructions");
}

/// A deterministic generator.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn k(&mut self) -> u32 {
        match self.below(5) {
            0 => self.below(4) as u32,
            1 => 1 << self.below(32),
            2 => u32::MAX - self.below(3) as u32,
            _ => self.next() as u32,
        }
    }
}

/// A random body whose every path ends at `len` (the observation tail comes after): all
/// scratch words stored first, then random instructions; jumps land inside the body or on
/// its end.
fn random_body(r: &mut Rng, len: usize) -> Vec<Insn> {
    let mut body: Vec<Insn> = Vec::new();
    for k in 0..16 {
        body.push(insn(0x00, 0, 0, r.k()));
        body.push(insn(0x02, 0, 0, k));
    }
    body.push(insn(0x01, 0, 0, r.k() | 1));
    let alu_k = [0x04u16, 0x14, 0x24, 0x34, 0x44, 0x54, 0x64, 0x74, 0xa4];
    let alu_x = [0x0cu16, 0x1c, 0x2c, 0x4c, 0x5c, 0x6c, 0x7c, 0xac];
    let jmp = [0x15u16, 0x25, 0x35, 0x45, 0x1d, 0x2d, 0x3d, 0x4d];
    while body.len() < len {
        let left = len - body.len() - 1;
        let i = match r.below(12) {
            // (not the instruction pointer: the child's is not ours to choose)
            0 | 1 => Insn::ld([0u32, 4, 16, 20, 24, 28, 32, 36, 40, 44, 48, 52, 56, 60][r.below(14) as usize]),
            2 => {
                let code = alu_k[r.below(alu_k.len() as u64) as usize];
                let k = match code {
                    0x64 | 0x74 => r.below(32) as u32,
                    0x34 => r.k().max(1),
                    _ => r.k(),
                };
                insn(code, 0, 0, k)
            }
            // a division by X is made safe by `or #1` on X first (tax after or)
            3 => insn(alu_x[r.below(alu_x.len() as u64) as usize], 0, 0, 0),
            4 => insn([0x60u16, 0x61, 0x02, 0x03][r.below(4) as usize], 0, 0, r.below(16) as u32),
            5 => insn([0x84u16, 0x07, 0x87, 0x80, 0x81, 0x00, 0x01][r.below(7) as usize], 0, 0, r.k()),
            _ => {
                let span = left.min(255) as u64 + 1;
                insn(jmp[r.below(jmp.len() as u64) as usize], r.below(span) as u8, r.below(span) as u8, r.k())
            }
        };
        body.push(i);
    }
    body
}

#[test]
fn random_programs_compute_on_the_kernel_what_the_emulator_computes() {
    let mut r = Rng(0x5ca1_ab1e_0016_0001);
    let programs = if std::env::var_os("SCPC_STRESS").is_some() { 2000 } else { 60 };
    let (mut compared, mut proven_calls) = (0, 0);
    for _ in 0..programs {
        let len = 40 + r.below(40) as usize;
        let body = random_body(&mut r, len);
        let calls: Vec<(u32, [u64; 6])> = (0..12).map(|_| (NR, std::array::from_fn(|_| r.next() >> r.below(64)))).collect();
        for shift in [0u32, 12, 24] {
            // observation: ret errno((A >> shift) & 0xfff)
            let mut insns = body.clone();
            insns.extend([insn(0x74, 0, 0, shift), insn(0x54, 0, 0, 0xfff), insn(0x44, 0, 0, 0x0005_0000), insn(0x16, 0, 0, 0)]);
            let p = wrapped(&insns);
            check(&p).unwrap_or_else(|e| panic!("{e}"));
            let got = probe(&p, &calls).expect("the kernel loads it");
            let mut m = scpc::prove::dd::Manager::new(1 << 17);
            let diagram = scpc::prove::filter_diagram(&mut m, &p);
            for ((nr, args), errno) in calls.iter().zip(got) {
                let data = SeccompData { nr: *nr, arch: scpc::abi::Arch::X86_64.table().audit_arch, instruction_pointer: 0, args: *args };
                let ret = run(&p, &data).expect("runs").ret;
                // a division by X = 0 returns 0: the kernel kills the thread; not among these
                assert_eq!(ret & 0xffff_0000, 0x0005_0000, "the emulator ran into a division by 0");
                assert_eq!(errno, (ret & 0xfff) as i32, "args {args:x?}\n{}", scpc::bpf::disasm::disasm(&p));
                compared += 1;
                // the symbolic execution agrees, where it fits in its budget
                if let Ok(d) = diagram {
                    assert_eq!(scpc::prove::eval(&m, d, &data), u64::from(ret), "diagram, args {args:x?}");
                    proven_calls += 1;
                }
            }
        }
    }
    println!(
        "{compared} calls of {programs} random programs: the kernel and the emulator agree; the decision diagram too on {proven_calls}"
    );
    assert!(proven_calls * 4 > compared, "the symbolic execution fits its budget on most random programs");
}
