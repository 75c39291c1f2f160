//! Questions asked of policies, filters and logs, after the build's stages: what decided a
//! logged call ([`explain`]), a draft policy from traces ([`generate`]), `test` blocks run on
//! the compiled filters ([`judge`]), calls as people write them ([`call`], for `scpc sim`), and the
//! ABI tables and stdlib groups looked up ([`syscalls`], for `scpc syscalls` and `scpc groups`). (`scpc diff` is [`crate::diff`], to move here.)

pub mod call;
pub mod explain;
pub mod generate;
pub mod judge;
pub mod syscalls;
