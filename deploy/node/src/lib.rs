//! scpc-node: what runs on a node, and the contract between the compiler, the deployer and
//! the node. It depends on no other crate of the workspace (the compiler and the deployer
//! depend on it), so the `scpc-node` program stays small and static.
//!
//! The program has two jobs: `scpc-node run FILTER -- CMD` (start a command under a filter)
//! and `scpc-node serve` (one JSON request on standard input, one JSON response on standard
//! output: [`protocol`]), through which the deployer, or anything else, installs filters,
//! rolls them back and asks what a node runs.
//!
//! - [`sha256`]: digests as the contract writes them ([`Sha256`]), the one hashing helper.
//! - [`manifest`]: `NAME.manifest.json` ([`Manifest`]), written by the compiler and read by
//!   the deployer through the same type, and the file names of a build.
//! - [`bpf`]: the `struct sock_filter` record, the `.bpf` file format, and the checks the
//!   kernel makes before loading a filter.
//! - [`loader`]: no_new_privs and seccomp(2), and ptrace to read a process's filters: the
//!   only `unsafe` code of the workspace.
//! - [`dump`]: the filters a running process is under (PTRACE_SECCOMP_GET_FILTER), for `scpc
//!   dump` and `scpc status`.
//! - [`run`]: a filter file checked for this machine, then a command run under it (`scpc-node
//!   run`, `scpc exec`).
//! - [`protocol`]: the requests and responses of `scpc-node serve`.
//! - [`serve`]: reading a request, doing its job, answering.
//! - [`jobs`]: install, rollback, read and remove for a service's path, crash-safe.
//! - [`store`]: file operations relative to directory descriptors that follow no link, the
//!   lock, atomic writes, the free-space check.
//! - [`state`]: the state file of an install path.
//! - [`hooks`]: running a step (a service's reload or health command, systemctl) under a time
//!   limit.
//! - [`systemd`]: the drop-in that runs a unit under its filter.
//! - [`enforce`]: whether a service's processes run under the deployed filter.
//!
//! # Example
//! ```
//! use scpc_node::bpf::{check, compares_arch, Insn, BPF_JEQ};
//! // ld arch; jeq AUDIT_ARCH_X86_64 ? next : kill; allow
//! let filter = [Insn::ld(4), Insn::jmp(BPF_JEQ, 0xc000_003e, 1, 0), Insn::ret(0x8000_0000), Insn::ret(0x7fff_0000)];
//! assert!(check(&filter).is_ok());
//! assert!(compares_arch(&filter, 0xc000_003e));
//! ```
#![deny(missing_docs)]

pub mod bpf;
pub mod dump;
pub mod enforce;
pub mod hooks;
pub mod jobs;
pub mod loader;
pub mod manifest;
pub mod protocol;
pub mod run;
pub mod serve;
pub mod sha256;
pub mod state;
pub mod store;
pub mod systemd;

pub use manifest::Manifest;
pub use sha256::Sha256;
