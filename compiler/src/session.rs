//! The build as one library call: load a file and its includes ([`load`]), then [`compile`]
//! one of its policies: check it, compile and validate a filter per target, render what
//! `--emit` asks for, and write the manifest, all in memory ([`Bundle`]); the caller writes
//! the bundle ([`Bundle::write`]) or looks at it. The `scpc` binary, the tests and the
//! benchmark all build through here.

use std::path::{Path, PathBuf};

use scpc_lang::diag::Diagnostics;
use scpc_lang::include::{load_unit, FsLoader, Loaded, Loader, MemLoader, Unit};
use scpc_lang::source::SourceMap;
use scpc_node::manifest::{manifest_file, oci_file, rendering_file, Manifest, SourceEntry, TargetEntry};
use scpc_node::Sha256;

use crate::abi::{Arch, KernelVersion};
use crate::artifact::oci::{export, ExportError};
use crate::artifact::render::{render, Emit};
use crate::artifact::{audit, BuildError, Filter};
use crate::ir::Policy;
use crate::profile::Profile;
use crate::sema;

/// The loader of the command line: files on disk, `std/...` from the bundled library.
pub fn fs_loader() -> FsLoader {
    fs_loader_with(Vec::new())
}

/// The loader of the command line with `-I` directories (includes may also come from them).
pub fn fs_loader_with(include_dirs: Vec<std::path::PathBuf>) -> FsLoader {
    FsLoader { stdlib: scpc_stdlib::get, include_dirs }
}

/// The root file of a unit cannot be read.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[error("cannot read `{path}`: {reason}")]
#[diagnostic(code(scpc::load::unreadable))]
pub struct LoadError {
    /// The file.
    pub path: String,
    /// Why (the loader's words).
    pub reason: String,
}

/// Loads a root file and its includes (problems with includes go to `diags`). `Err` when the
/// root itself cannot be read.
pub fn load(path: &str, loader: &dyn Loader, map: &mut SourceMap, diags: &mut Diagnostics) -> Result<Unit, LoadError> {
    load_unit(path, loader, map, diags).map_err(|reason| LoadError { path: path.to_string(), reason: reason.to_string() })
}

/// Checks one file held in memory (its includes may name `std/...` or files on disk): what
/// the importers and `generate` check their output with, and what tests and examples use.
pub fn check_source(name: &str, text: &str) -> (sema::Checked, Diagnostics, SourceMap) {
    struct Mem(MemLoader, FsLoader);
    impl Loader for Mem {
        fn load(&self, path: &str, from: Option<&Loaded>) -> Result<Loaded, scpc_lang::include::LoadError> {
            self.0.load(path, from).or_else(|_| self.1.load(path, from))
        }
    }
    let mem = MemLoader { files: [(name.to_string(), text.to_string())].into() };
    let loader = Mem(mem, fs_loader());
    let (mut map, mut diags) = (SourceMap::new(), Diagnostics::new());
    let unit = load(name, &loader, &mut map, &mut diags).unwrap_or(Unit { files: vec![] });
    let checked = sema::analyze(&unit, &sema::Options::default(), &mut diags);
    diags.drop_acknowledged(&map);
    (checked, diags, map)
}

/// What to build.
#[derive(Clone, Debug)]
pub struct BuildOptions {
    /// The policy to compile.
    pub policy: String,
    /// Only these targets of the policy (all when empty).
    pub targets: Vec<Arch>,
    /// The frequency profile the search trees are laid out by.
    pub profile: Profile,
    /// Audit-only: every decision other than `allow` becomes `log` (Linux 4.14).
    pub audit: bool,
    /// The renderings to make besides the manifest.
    pub emit: Vec<Emit>,
    /// Refuse a filter that was only validated by sampling (the proof ran out of its budget).
    pub require_proof: bool,
}

/// Why a build made nothing.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum CompileError {
    /// The unit or the policy has errors (they are in the diagnostics sink).
    #[error("the policy does not check")]
    #[diagnostic(code(scpc::build::invalid))]
    Invalid,
    /// The policy has none of the requested targets.
    #[error("policy `{policy}` has none of the requested targets")]
    #[diagnostic(code(scpc::build::no_target))]
    NoTarget {
        /// The policy.
        policy: String,
    },
    /// `--audit` needs `log`, which older kernels do not have.
    #[error("--audit turns decisions into `log`, which needs Linux 4.14; the policy says `kernel >= {kernel}`")]
    #[diagnostic(code(scpc::build::audit_kernel))]
    AuditNeedsKernel {
        /// The policy's oldest kernel.
        kernel: KernelVersion,
    },
    /// Code generation or translation validation failed.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Build(#[from] BuildError),
    /// `--emit oci` for a policy the format cannot express.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Oci(#[from] ExportError),
    /// `--emit systemd` for a policy systemd cannot express.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Systemd(#[from] crate::artifact::systemd::SystemdError),
    /// `--require-proof`, and the decision procedure did not answer for a filter.
    #[error("the filter of `{policy}` for {arch} was validated by sampling ({cases} calls) but not proven: the decision procedure ran out of its node budget; nothing was written")]
    #[diagnostic(code(scpc::build::not_proven), help("build without --require-proof to accept a filter checked on sampled calls only"))]
    NotProven {
        /// The policy.
        policy: String,
        /// The filter's architecture.
        arch: Arch,
        /// Calls the sampler checked.
        cases: usize,
    },
}

impl CompileError {
    /// Whether the input is to blame (exit status 1), rather than scpc (2: a difference
    /// translation validation found is a compiler bug).
    pub fn is_input_error(&self) -> bool {
        match self {
            CompileError::Build(BuildError::Codegen(crate::codegen::CodegenError::TooLarge { .. })) => true,
            CompileError::Build(_) | CompileError::NotProven { .. } => false,
            CompileError::Invalid
            | CompileError::NoTarget { .. }
            | CompileError::AuditNeedsKernel { .. }
            | CompileError::Oci(_)
            | CompileError::Systemd(_) => true,
        }
    }
}

/// One build, in memory.
#[derive(Clone, Debug)]
pub struct Bundle {
    /// The policy as compiled (audit-only already applied).
    pub policy: Policy,
    /// One validated filter per target.
    pub filters: Vec<Filter>,
    /// The manifest.
    pub manifest: Manifest,
    /// Every file of the build, by name, in the order they are written: the renderings, the
    /// OCI profile, and the manifest last.
    pub files: Vec<(String, Vec<u8>)>,
}

/// A file of a bundle could not be written.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum WriteError {
    /// The output directory cannot be made.
    #[error("cannot create `{}`: {source}", dir.display())]
    #[diagnostic(code(scpc::build::create_dir))]
    CreateDir {
        /// The directory.
        dir: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A file cannot be written.
    #[error("cannot write `{}`: {source}", path.display())]
    #[diagnostic(code(scpc::build::write))]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// Where a file is written before it is renamed into place.
fn temp_path(path: &Path) -> PathBuf {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".scpc-fmt.tmp");
    tmp.into()
}

/// Writes `bytes` to the temporary beside `path` and flushes it.
fn write_temp(path: &Path, bytes: &[u8]) -> std::io::Result<PathBuf> {
    use std::io::Write;
    let tmp = temp_path(path);
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    Ok(tmp)
}

/// Writes beside the target and renames over it, so the file is never half written.
pub fn write_atomically(path: &Path, bytes: impl AsRef<[u8]>) -> std::io::Result<()> {
    let tmp = write_temp(path, bytes.as_ref())?;
    std::fs::rename(&tmp, path)
}

impl Bundle {
    /// Writes every file into `dir` (made if missing): first each beside its place, flushed;
    /// only when all are written are they renamed into place (the manifest last), so a
    /// failure to write (a full disk, a bad directory) leaves the files that were there before
    /// untouched and no temporary behind.
    pub fn write(&self, dir: &Path) -> Result<(), WriteError> {
        std::fs::create_dir_all(dir).map_err(|source| WriteError::CreateDir { dir: dir.into(), source })?;
        let mut written = Vec::new();
        for (name, bytes) in &self.files {
            let path = dir.join(name);
            match write_temp(&path, bytes) {
                Ok(tmp) => written.push((tmp, path)),
                Err(source) => {
                    for (tmp, _) in &written {
                        let _ = std::fs::remove_file(tmp);
                    }
                    // a partial temporary of the file that failed, if any
                    let _ = std::fs::remove_file(temp_path(&path));
                    return Err(WriteError::Write { path, source });
                }
            }
        }
        for (tmp, path) in written {
            std::fs::rename(&tmp, &path).map_err(|source| WriteError::Write { path, source })?;
        }
        Ok(())
    }
}

/// Resolves policy `name` of `unit` for `targets` (all of its own when empty); what is wrong
/// goes to `diags` (acknowledged warnings dropped).
pub fn resolve(unit: &Unit, map: &SourceMap, name: &str, targets: &[Arch], diags: &mut Diagnostics) -> Result<Policy, CompileError> {
    let options = sema::Options { targets: targets.to_vec() };
    let policy = sema::resolve(unit, name, &options, diags);
    diags.drop_acknowledged(map);
    let policy = policy.filter(|_| !diags.has_errors()).ok_or(CompileError::Invalid)?;
    if policy.targets.is_empty() {
        return Err(CompileError::NoTarget { policy: name.to_string() });
    }
    Ok(policy)
}

/// Compiles policy `options.policy` of `unit` (loaded into `map`): resolved and checked
/// (problems to `diags`), one filter per target compiled and validated against the policy,
/// the renderings `options.emit` asks for, and the manifest. Nothing is written.
///
/// ```
/// use scpc::artifact::render::Emit;
/// use scpc_lang::{diag::Diagnostics, include::MemLoader, source::SourceMap};
///
/// let text = "policy p {\n  target x86_64, aarch64\n  default errno(EPERM)\n  allow read, write\n}\n";
/// let loader = MemLoader { files: [("p.scp".to_string(), text.to_string())].into() };
/// let (mut map, mut diags) = (SourceMap::new(), Diagnostics::new());
/// let unit = scpc::load("p.scp", &loader, &mut map, &mut diags).expect("in memory");
/// let profile = scpc::import::trace::builtin_profile();
/// let options = scpc::BuildOptions { policy: "p".into(), targets: vec![], profile, audit: false, emit: vec![Emit::Bpf, Emit::Disasm], require_proof: true };
/// let bundle = scpc::compile(&unit, &map, &options, &mut diags).expect("compiles");
/// let names: Vec<&str> = bundle.files.iter().map(|(name, _)| name.as_str()).collect();
/// assert_eq!(names, ["p.x86_64.bpf", "p.x86_64.disasm", "p.aarch64.bpf", "p.aarch64.disasm", "p.manifest.json"]);
/// assert_eq!(bundle.manifest.targets.len(), 2);
/// assert!(bundle.filters.iter().all(|f| f.proven), "each filter proven equal to the policy on every input");
/// ```
pub fn compile(unit: &Unit, map: &SourceMap, options: &BuildOptions, diags: &mut Diagnostics) -> Result<Bundle, CompileError> {
    let mut policy = resolve(unit, map, &options.policy, &options.targets, diags)?;
    if options.audit {
        if policy.kernel < KernelVersion::new(4, 14) {
            return Err(CompileError::AuditNeedsKernel { kernel: policy.kernel });
        }
        policy = audit(&policy);
    }
    let filters = crate::artifact::compile(&policy, &options.profile)?;
    if let Some(f) = filters.iter().find(|f| options.require_proof && !f.proven) {
        return Err(CompileError::NotProven { policy: policy.name.clone(), arch: f.arch, cases: f.validated_cases });
    }
    let mut files = Vec::new();
    let mut targets = Vec::new();
    for f in &filters {
        let arch = f.arch.name();
        targets.push(TargetEntry {
            arch: arch.to_string(),
            archs: f.archs.iter().map(|a| a.to_string()).collect(),
            file: rendering_file(&policy.name, arch, "bpf"),
            sha256: Sha256::of(&f.program.to_bytes()),
            instructions: f.program.insns.len(),
            default_action: policy.default.to_string(),
            audit: options.audit,
        });
        for r in &options.emit {
            if let (Some(ext), Some(bytes)) = (r.extension(), render(&policy.name, f, *r)) {
                files.push((rendering_file(&policy.name, arch, ext), bytes));
            }
        }
    }
    if options.emit.contains(&Emit::Oci) {
        // one profile for every target: the format names architectures, not filters
        files.push((oci_file(&policy.name), export(&policy)?.into_bytes()));
    }
    if options.emit.contains(&Emit::Systemd) {
        // one drop-in for every target: systemd lists names for all architectures
        files.push((format!("{}.systemd.conf", policy.name), crate::artifact::systemd::export(&policy)?.into_bytes()));
    }
    let manifest = Manifest {
        policy: policy.name.clone(),
        compiler: format!("scpc {}", env!("CARGO_PKG_VERSION")),
        sources: sources(unit, map),
        profile: options.profile.source.clone(),
        audit: options.audit,
        kernel: policy.kernel.to_string(),
        targets,
    };
    files.push((manifest_file(&policy.name), manifest.to_json().into_bytes()));
    Ok(Bundle { policy, filters, manifest, files })
}

/// Every file of the unit with its sha256, sorted by name.
fn sources(unit: &Unit, map: &SourceMap) -> Vec<SourceEntry> {
    let mut out: Vec<SourceEntry> = unit
        .files
        .iter()
        .map(|f| {
            let file = map.file(f.file);
            SourceEntry { file: file.name.clone(), sha256: Sha256::of(file.text.as_bytes()) }
        })
        .collect();
    out.sort_by(|a, b| a.file.cmp(&b.file));
    out
}

/// A file that does not parse: its syntax error, and the map to print it with.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[error("the file does not parse")]
#[diagnostic(code(scpc::fmt::syntax))]
pub struct Unparsable {
    /// The syntax error.
    pub diagnostics: Diagnostics,
    /// The file.
    pub map: SourceMap,
}

/// `text` (named `file`) in the formatter's canonical form; comments are kept.
pub fn format(file: &str, text: &str) -> Result<String, Box<Unparsable>> {
    let mut map = SourceMap::new();
    let id = map.add(file, text);
    let mut diagnostics = Diagnostics::new();
    match scpc_lang::syntax::parse_file(&map, id, &mut diagnostics) {
        Some(ast) => Ok(scpc_lang::fmt::format(&ast, text, map.file(id).base)),
        None => Err(Box::new(Unparsable { diagnostics, map })),
    }
}

/// `text` in canonical form (unchanged if it does not parse): how the importers and
/// `generate` write their drafts.
pub fn canonical(file: &str, text: String) -> String {
    format(file, &text).unwrap_or(text)
}

/// What `scpc fmt --check` prints for a file not in canonical form: a unified diff from the
/// file (`a/FILE`) to its canonical form (`b/FILE`), 3 lines of context.
pub fn format_diff(file: &str, text: &str, formatted: &str) -> String {
    similar::TextDiff::from_lines(text, formatted)
        .unified_diff()
        .context_radius(3)
        .header(&format!("a/{file}"), &format!("b/{file}"))
        .to_string()
}
