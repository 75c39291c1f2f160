//! The intermediate representation: what the front end ([`crate::sema`]) hands to the back
//! end ([`crate::codegen`]), and the meaning both are judged by.
//!
//! - [`policy`]: the resolved policy: per target architecture, syscall number → the rules
//!   that may decide it, in order, each with a condition typed for that syscall there.
//! - [`eval`]: the reference interpreter, the language's meaning in the plainest code.
//! - [`diagram`]: the meaning of a syscall's rules as a reduced decision diagram over the
//!   argument words: the back end lays out its argument code from it, the checker finds the
//!   conditions that always or never hold with it.
//! - `display`: the textual form (`impl Display for Policy`), the format of the IR snapshots
//!   (`compiler/tests/snapshots.rs`).

pub mod diagram;
mod display;
pub mod eval;
pub mod policy;

pub use policy::{ret_name, Action, ArchPolicy, CondData, CondId, Entry, Policy, RuleData, RuleId};
