//! Build artifacts (cli.md): `NAME.ARCH.bpf` for each target (the filter as the kernel takes
//! it) and `NAME.manifest.json`; `--emit` renderings. Everything is a pure function of the
//! inputs: the same sources, options and profile give the same bytes.
//!
//! A filter for an architecture also holds the architectures its kernel runs alongside:
//! x86_64 with x32 and i386, aarch64 with arm, when those are targets too.

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::abi::Arch;
use crate::bpf::{disasm::disasm, Program};
use crate::codegen::{emit, CodegenError};
use crate::policy::{Action, Policy};
use crate::profile::Profile;
use crate::verify::{validate, VerifyError};

/// Why a build failed.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum BuildError {
    /// Code generation failed.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Codegen(#[from] CodegenError),
    /// Translation validation found a difference.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Verify(#[from] Box<VerifyError>),
}

/// Architectures whose calls a kernel of `arch` also takes.
pub fn companions(arch: Arch) -> &'static [Arch] {
    match arch {
        Arch::X86_64 | Arch::X32 => &[Arch::X86_64, Arch::X32, Arch::I386],
        Arch::Aarch64 => &[Arch::Aarch64, Arch::Arm],
        Arch::I386 => &[Arch::I386],
        Arch::Arm => &[Arch::Arm],
        Arch::Riscv64 => &[Arch::Riscv64],
    }
}

/// The policy for a host of `arch`: its targets among `arch`'s companions.
pub fn for_host(policy: &Policy, arch: Arch) -> Policy {
    let mut p = policy.clone();
    p.targets.retain(|t| companions(arch).contains(&t.arch));
    p
}

/// Audit-only: every decision other than `allow` becomes `log`.
pub fn audit(policy: &Policy) -> Policy {
    let log = |a: Action| if a == Action::Allow { a } else { Action::Log };
    let mut p = policy.clone();
    p.default = log(p.default);
    p.badarch = log(p.badarch);
    p.newer = p.newer.map(log);
    for r in p.rules.values_mut() {
        r.action = log(r.action);
    }
    p
}

/// One compiled, validated filter.
#[derive(Clone, Debug)]
pub struct Filter {
    /// The host architecture it is for.
    pub arch: Arch,
    /// The architectures it dispatches on.
    pub archs: Vec<Arch>,
    /// The program.
    pub program: Program,
    /// Calls checked by translation validation's sampler.
    pub validated_cases: usize,
    /// Whether the filter was proven equal to the policy on every input (else only sampled).
    pub proven: bool,
}

/// Compiles and validates the filter of each target of `policy`.
pub fn compile(policy: &Policy, profile: &Profile) -> Result<Vec<Filter>, BuildError> {
    let mut out = Vec::new();
    for t in &policy.targets {
        let host = for_host(policy, t.arch);
        let program = emit(&host, profile)?;
        let v = validate(&host, &program).map_err(Box::new)?;
        out.push(Filter {
            arch: t.arch,
            archs: host.targets.iter().map(|t| t.arch).collect(),
            program,
            validated_cases: v.cases,
            proven: v.proven,
        });
    }
    Ok(out)
}

/// Hex sha256.
pub fn sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// `NAME.manifest.json`.
#[derive(Serialize)]
pub struct Manifest {
    /// The policy.
    pub policy: String,
    /// `scpc VERSION`.
    pub compiler: String,
    /// Every source file of the unit, with its sha256.
    pub sources: Vec<SourceEntry>,
    /// The frequency profile used.
    pub profile: String,
    /// Whether every non-allow decision was turned into `log`.
    pub audit: bool,
    /// The oldest kernel.
    pub kernel: String,
    /// One per filter.
    pub targets: Vec<TargetEntry>,
}

/// A source file.
#[derive(Serialize)]
pub struct SourceEntry {
    /// Its name.
    pub file: String,
    /// Its sha256.
    pub sha256: String,
}

/// A filter file.
#[derive(Serialize)]
pub struct TargetEntry {
    /// Host architecture.
    pub arch: String,
    /// The architectures it dispatches on.
    pub archs: Vec<String>,
    /// `NAME.ARCH.bpf`.
    pub file: String,
    /// Its sha256.
    pub sha256: String,
    /// Instructions.
    pub instructions: usize,
    /// The default action.
    pub default_action: String,
    /// Whether audit-only.
    pub audit: bool,
}

/// A rendering for `--emit`.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Emit {
    /// The raw filter.
    Bpf,
    /// A C header with a `struct sock_filter` array.
    C,
    /// A Rust array of (code, jt, jf, k).
    Rust,
    /// The annotated listing.
    Disasm,
}

impl Emit {
    /// File extension.
    pub fn extension(self) -> &'static str {
        match self {
            Emit::Bpf => "bpf",
            Emit::C => "h",
            Emit::Rust => "rs",
            Emit::Disasm => "disasm",
        }
    }
}

fn ident(s: &str) -> String {
    s.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect()
}

/// The bytes of one rendering of a filter.
pub fn render(policy: &str, f: &Filter, what: Emit) -> Vec<u8> {
    let name = format!("{}_{}", ident(policy), f.arch.name());
    match what {
        Emit::Bpf => f.program.to_bytes(),
        Emit::Disasm => {
            format!("# policy {policy}, filter for {} ({} instructions)\n{}", f.arch, f.program.insns.len(), disasm(&f.program))
                .into_bytes()
        }
        Emit::C => {
            let mut s = format!("/* generated by scpc from policy {policy} for {}; do not edit */\n#include <linux/filter.h>\n\nstatic const struct sock_filter {name}[] = {{\n", f.arch);
            for i in &f.program.insns {
                s.push_str(&format!("    {{ {:#06x}, {}, {}, {:#010x} }},\n", i.code, i.jt, i.jf, i.k));
            }
            s.push_str(&format!("}};\nstatic const struct sock_fprog {name}_prog = {{ sizeof({name}) / sizeof({name}[0]), (struct sock_filter *){name} }};\n"));
            s.into_bytes()
        }
        Emit::Rust => {
            let mut s = format!("// generated by scpc from policy {policy} for {}; do not edit\n/// (code, jt, jf, k) records of the filter.\npub const {}: [(u16, u8, u8, u32); {}] = [\n", f.arch, name.to_uppercase(), f.program.insns.len());
            for i in &f.program.insns {
                s.push_str(&format!("    ({:#06x}, {}, {}, {:#010x}),\n", i.code, i.jt, i.jf, i.k));
            }
            s.push_str("];\n");
            s.into_bytes()
        }
    }
}
