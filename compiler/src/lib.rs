//! scpc: a compiler for Linux seccomp policies written in the `.scp` language.
//!
//! # The pipeline, in order (dependencies run one way, down this list)
//! 1. [`load`] ([`scpc_lang::include::load_unit`]): text to a spanned syntax tree, includes
//!    resolved.
//! 2. [`sema`]: names resolved and every rule typed against the per-architecture kernel ABI
//!    tables ([`abi`]); the result is the IR ([`ir::Policy`]): per target, syscall number →
//!    typed rules. [`ir::eval`] is the reference interpreter, the meaning every filter is
//!    checked against.
//! 3. [`codegen`]: ranges, the search tree over syscall numbers laid out by a frequency
//!    [`profile`], conditions, into a BPF program ([`bpf`]).
//! 4. [`verify`]: translation validation: the emulator ([`bpf::sim`]) against the reference
//!    interpreter on every syscall number and argument boundary.
//! 5. [`artifact`]: the filters of every target, the `--emit` renderings and the manifest
//!    ([`scpc_node::Manifest`]).
//!
//! [`compile`] runs 2–5 for one policy and returns a [`Bundle`] (nothing is written until
//! [`Bundle::write`]). Around the pipeline: [`import`] (traces, audit logs, Docker profiles
//! in), [`analysis`] (explain, generate, test blocks on compiled filters), [`diff`],
//! [`report`] (diagnostics out). Loading a filter into the kernel is `scpc_node::loader`'s.
//!
//! # Example
//! ```
//! use scpc::{check_source, abi::Arch, ir::eval::decide, ir::Action};
//! let text = "policy p {\n  target x86_64\n  default errno(EPERM)\n  allow read\n}\n";
//! let (checked, diags, _map) = check_source("p.scp", text);
//! assert!(!diags.has_errors());
//! let policy = &checked.policies["p"];
//! let table = Arch::X86_64.table();
//! let read = table.syscall("read").unwrap().nr;
//! assert_eq!(decide(policy, table.audit_arch, read, &[0; 6]).action, Action::Allow);
//! ```
#![deny(missing_docs)]

pub mod abi;
pub mod analysis;
pub mod artifact;
pub mod bpf;
pub mod codegen;
pub mod diff;
pub mod docker;
pub mod import;
pub mod ir;
pub mod profile;
pub mod prove;
pub mod report;
pub mod sema;
pub mod session;
pub mod suggest;
pub mod verify;

// Paths that modules being rewritten on other branches (sema, verify, diff, codegen, docker)
// still use; new code names `ir::...` and `analysis::generate`.
#[doc(hidden)]
pub use analysis::generate;
#[doc(hidden)]
pub use ir::{eval, policy};

/// `scpc --version`: the compiler's version and the newest kernel its ABI tables know.
pub fn version() -> String {
    format!(
        "{} (ABI tables: Linux {}; {})",
        env!("CARGO_PKG_VERSION"),
        abi::tables_kernel(),
        abi::Arch::ALL.map(abi::Arch::name).join(", ")
    )
}

pub use session::{check_source, compile, fs_loader, fs_loader_with, load, BuildOptions, Bundle, CompileError};
