//! Build artifacts: `NAME.ARCH.bpf` for each target (the filter as the kernel takes it) and
//! `NAME.manifest.json` (the contract, [`scpc_node::manifest`]); `--emit` renderings
//! ([`render`], [`oci`]). Everything is a pure function of the inputs: the same sources,
//! options and profile give the same bytes.
//!
//! A filter for an architecture also holds the architectures its kernel runs alongside:
//! x86_64 with x32 and i386, aarch64 with arm, when those are targets too.

pub mod oci;
pub mod render;
pub mod systemd;

use crate::abi::Arch;
use crate::bpf::Program;
use crate::codegen::{emit, CodegenError};
use crate::ir::{Action, Policy};
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

pub use scpc_node::manifest::{Manifest, SourceEntry, TargetEntry};

/// Why a `.bpf` file given to `scpc sim`, `disasm` or `diff` cannot be used.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum FilterFileError {
    /// It cannot be read.
    #[error("cannot read `{path}`: {source}")]
    #[diagnostic(code(scpc::artifact::filter_unreadable))]
    Unreadable {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// Its size is not a multiple of 8.
    #[error("{path}: byte {}: not a filter: its size ({bytes} bytes) is not a multiple of 8\n  help: a .bpf file holds 8-byte struct sock_filter records, as `scpc build` writes them", bytes / 8 * 8)]
    #[diagnostic(code(scpc::artifact::filter_size))]
    Size {
        /// The file.
        path: String,
        /// Its size.
        bytes: usize,
    },
    /// It is a policy source, not a built filter.
    #[error("{path}: this is a policy source, not a filter: build it first\n  help: `scpc build {path} --policy NAME -o DIR` writes DIR/NAME.ARCH.bpf")]
    #[diagnostic(code(scpc::artifact::filter_is_source))]
    Source {
        /// The file.
        path: String,
    },
    /// It is empty.
    #[error("{path}: byte 0: the file is empty\n  help: build a filter with `scpc build FILE --policy NAME`")]
    #[diagnostic(code(scpc::artifact::filter_empty))]
    Empty {
        /// The file.
        path: String,
    },
    /// The kernel would refuse it (as far as the emulator knows).
    #[error("{path}: {error}\n  help: the kernel would refuse this filter; rebuild it with `scpc build` (see it with `scpc disasm`)")]
    #[diagnostic(code(scpc::artifact::filter_refused))]
    Refused {
        /// The file.
        path: String,
        /// Why.
        error: crate::bpf::sim::SimError,
    },
}

impl FilterFileError {
    /// 1 when the file is wrong, 2 when it cannot be read.
    pub fn exit_status(&self) -> u8 {
        match self {
            FilterFileError::Unreadable { .. } => 2,
            _ => 1,
        }
    }
}

/// Reads a `.bpf` file and checks it as the kernel would before loading it (the emulator's
/// checks, [`crate::bpf::sim::check`]); errors are located by instruction and byte.
pub fn read_filter(path: &str) -> Result<Program, FilterFileError> {
    let bytes = std::fs::read(path).map_err(|source| FilterFileError::Unreadable { path: path.to_string(), source })?;
    if scpc_node::run::is_policy_source(std::path::Path::new(path), &bytes) {
        return Err(FilterFileError::Source { path: path.to_string() });
    }
    let program = Program::from_bytes(&bytes).ok_or(FilterFileError::Size { path: path.to_string(), bytes: bytes.len() })?;
    if program.insns.is_empty() {
        return Err(FilterFileError::Empty { path: path.to_string() });
    }
    crate::bpf::sim::check(&program).map_err(|error| FilterFileError::Refused { path: path.to_string(), error })?;
    Ok(program)
}

/// The header `scpc disasm` prints above a filter read from `path` (its bytes `bytes`): its
/// sha256 and, from the build manifest beside it (`NAME.manifest.json` for
/// `NAME.ARCH.bpf`), its policy and architectures, when the manifest lists the file with
/// this sha256. The manifest's strings are printed only when they are plain names (the
/// manifest's own check), so a manifest cannot put text into the listing.
pub fn listing_header(path: &std::path::Path, bytes: &[u8]) -> crate::bpf::disasm::Header {
    let sha256 = scpc_node::Sha256::of(bytes);
    let mut header = crate::bpf::disasm::Header { sha256: sha256.to_string(), ..Default::default() };
    let file = path.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
    let Some((policy, _arch)) = file.strip_suffix(".bpf").and_then(|s| s.rsplit_once('.')) else {
        header.source = "no build manifest (not a NAME.ARCH.bpf file)".into();
        return header;
    };
    let manifest_name = scpc_node::manifest::manifest_file(policy);
    let manifest = path.with_file_name(&manifest_name);
    let parsed = std::fs::read(&manifest).ok().map(|b| scpc_node::Manifest::from_json(&b));
    match parsed {
        None => header.source = format!("no build manifest ({manifest_name} is not beside it)"),
        Some(Err(e)) => header.source = format!("{manifest_name} is not a build manifest: {e}"),
        Some(Ok(m)) => match m.targets.iter().find(|t| t.file == file) {
            Some(t) if t.sha256 == sha256 => {
                header.policy = Some(m.policy.clone());
                header.targets = t.archs.iter().filter(|a| Arch::from_name(a).is_some()).cloned().collect();
                header.source = format!("{manifest_name} ({})", m.compiler.chars().filter(|c| !c.is_control()).collect::<String>());
            }
            Some(t) => header.source = format!("{manifest_name} lists sha256 {} for it: this is not the file that was built", t.sha256),
            None => header.source = format!("{manifest_name} does not list {file}"),
        },
    }
    header
}
