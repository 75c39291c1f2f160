//! Other tools' formats read into scpc's: seccomp audit logs ([`audit`]: records, for
//! `explain`, `profile` and `generate`) and traces ([`trace`]: `strace -c`, `strace -f`, TSV
//! and audit logs, into call counts and frequency profiles). (The Docker/OCI profile importer
//! is [`crate::docker`], to move here.)

pub mod audit;
pub mod trace;
