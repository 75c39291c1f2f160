//! scpc-deploy: ships compiled seccomp artifacts to fleets of hosts over SSH.
//!
//! Not implemented yet: this crate holds the place the workspace layout gives it. The
//! deployer (inventory, host-key-checked SSH transport, atomic installs, canary waves, drift
//! checks and rollback) is specified in the project's deploy issue. It will know nothing of
//! BPF: it ships opaque payloads (name, bytes, sha256, remote path) that the `scpc` binary
//! builds from the compiler's artifacts.
#![deny(missing_docs)]
