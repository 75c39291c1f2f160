//! Questions asked of policies, filters and logs, after the build's stages: what decided a
//! logged call ([`explain`]), a draft policy from traces ([`generate`]), and `test` blocks run
//! on the compiled filters ([`judge`]). (`scpc diff` is [`crate::diff`], to move here.)

pub mod explain;
pub mod generate;
pub mod judge;
