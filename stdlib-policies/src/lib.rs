//! The bundled standard library of `.scp` files, reachable from any policy as `std/PATH`
//! (`include "std/groups.scp"`). The files live beside this crate and are embedded at build
//! time, so the `scpc` binary needs no source tree at run time.
//!
//! - `groups.scp`: syscall groups named as systemd's `SystemCallFilter=` sets.
//! - `examples/web.scp`: the whole example of the language reference.
#![deny(missing_docs)]

include!(concat!(env!("OUT_DIR"), "/files.rs"));

/// The text of `std/PATH`, if bundled.
pub fn get(path: &str) -> Option<&'static str> {
    FILES.iter().find(|(p, _)| *p == path).map(|(_, t)| *t)
}

/// Every bundled file as (path below `std/`, text), sorted by path.
pub fn all() -> &'static [(&'static str, &'static str)] {
    FILES
}

#[cfg(test)]
mod tests {
    #[test]
    fn groups_and_the_example_are_bundled() {
        assert!(super::get("groups.scp").is_some_and(|t| t.contains("group basic-io")));
        assert!(super::get("examples/web.scp").is_some());
        assert!(super::get("nope.scp").is_none());
    }
}
