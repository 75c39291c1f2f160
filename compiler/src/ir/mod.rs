//! The intermediate representation: what the front end ([`crate::sema`]) hands to the back
//! end ([`crate::codegen`]), and the meaning both are judged by.
//!
//! - [`policy`]: the resolved policy: per target architecture, syscall number → the rules
//!   that may decide it, in order, each with a condition typed for that syscall there.
//! - [`eval`]: the reference interpreter, the language's meaning in the plainest code.
//! - `display`: the textual form (`impl Display for Policy`), the format of the IR snapshots
//!   (`compiler/tests/snapshots.rs`).

mod display;
pub mod eval;
pub mod policy;

pub use policy::{ret_name, Action, ArchPolicy, CondData, CondId, Entry, Policy, RuleData, RuleId};
