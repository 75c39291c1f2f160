//! The `.scp` seccomp policy language: text to a spanned syntax tree, and back.
//!
//! # Terminology
//! - **policy**: a named set of statements (`target`, `kernel >=`, `default`, rules); a policy
//!   may `extends` another, which makes it a **layer** on top of its parent.
//! - **rule**: `[final] ACTION SYSCALLS [if CONDITION]`; a `final` rule is a guard rail no
//!   derived policy may override.
//! - **group**: a named list of syscalls and other groups, referenced as `@name`.
//! - **predicate** (condition): comparisons of syscall arguments joined by `&&`, `||`, `!`.
//! - **action**: what the filter returns (`allow`, `errno(N)`, `kill_process`, ...).
//!
//! This crate knows nothing about kernels: names are resolved and typed by `scpc`'s compiler.
//!
//! # Stages
//! 1. [`syntax::parse_file`]: one file to an [`ast::File`] (pest grammar in `syntax/scp.pest`).
//! 2. [`include::load_unit`]: a root file and its includes, with cycle detection.
//! 3. [`fmt::format`]: the canonical printer behind `scpc fmt`.
//!
//! # Example
//! ```
//! use scpc_lang::{diag::Diagnostics, source::SourceMap, syntax::parse_file};
//! let mut map = SourceMap::new();
//! let id = map.add("web.scp", "policy web {\n  default kill_process\n  allow read, write\n}\n");
//! let mut diags = Diagnostics::new();
//! let file = parse_file(&map, id, &mut diags).expect("valid");
//! let text = scpc_lang::fmt::format(&file, &map.file(id).text, map.file(id).base);
//! assert_eq!(text, "policy web {\n    default kill_process\n    allow read, write\n}\n");
//! ```
#![deny(missing_docs)]

pub mod ast;
pub mod diag;
pub mod fmt;
pub mod include;
pub mod source;
pub mod syntax;
