//! scpc: a compiler for Linux seccomp policies written in the `.scp` language.
//!
//! # Stages, in order
//! 1. [`scpc_lang::include::load_unit`]: text to a spanned syntax tree, includes resolved.
//! 2. [`sema::analyze`]: names resolved and every rule typed against the per-architecture
//!    kernel ABI tables ([`abi`]); the result is a resolved [`policy::Policy`] per policy.
//! 3. [`eval::decide`]: the reference interpreter, the meaning every compiled filter is
//!    checked against.
//!
//! The back end (BPF code generation, verification, artifacts) builds on [`policy::Policy`].
//!
//! # Example
//! ```
//! use scpc::{check_source, abi::Arch, eval::decide};
//! let text = "policy p {\n  target x86_64\n  default errno(EPERM)\n  allow read\n}\n";
//! let (checked, diags, _map) = check_source("p.scp", text);
//! assert!(!diags.has_errors());
//! let policy = &checked.policies["p"];
//! let table = Arch::X86_64.table();
//! let read = table.syscall("read").unwrap().nr;
//! assert_eq!(decide(policy, table.audit_arch, read, &[0; 6]).action, scpc::policy::Action::Allow);
//! ```
#![deny(missing_docs)]

pub mod abi;
pub mod artifact;
pub mod auditlog;
pub mod bpf;
pub mod codegen;
pub mod diff;
pub mod docker;
pub mod eval;
pub mod generate;
pub mod install;
pub mod oci;
pub mod policy;
pub mod profile;
pub mod report;
pub mod sema;
pub mod suggest;
pub mod verify;

use scpc_lang::diag::Diagnostics;
use scpc_lang::include::{load_unit, FsLoader, Loader, MemLoader, Unit};
use scpc_lang::source::SourceMap;

/// The loader of the command line: files on disk, `std/...` from the bundled library.
pub fn fs_loader() -> FsLoader {
    fs_loader_with(Vec::new())
}

/// The loader of the command line with `-I` directories.
pub fn fs_loader_with(include_dirs: Vec<std::path::PathBuf>) -> FsLoader {
    FsLoader { stdlib: scpc_stdlib::get, include_dirs }
}

/// Loads a root file and its includes. `Err` when the root itself cannot be read.
pub fn load(path: &str, loader: &dyn Loader, map: &mut SourceMap, diags: &mut Diagnostics) -> Result<Unit, String> {
    load_unit(path, loader, map, diags).map_err(|reason| format!("cannot read `{path}`: {reason}"))
}

/// Checks one file held in memory (its includes may name `std/...`): for tests and examples.
pub fn check_source(name: &str, text: &str) -> (sema::Checked, Diagnostics, SourceMap) {
    struct Mem(MemLoader, FsLoader);
    impl Loader for Mem {
        fn load(
            &self,
            path: &str,
            from: Option<&scpc_lang::include::Loaded>,
        ) -> Result<scpc_lang::include::Loaded, scpc_lang::include::LoadError> {
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
