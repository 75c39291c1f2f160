//! scpc-deploy: ships compiled seccomp artifacts to fleets of hosts over SSH.
//!
//! - [`inventory`]: the TOML inventory (hosts, services, rollout settings), validated with
//!   located errors.
//! - [`ansible`]: Ansible inventories (INI, YAML) as an inventory's host list.
//! - [`known_hosts`]: OpenSSH known_hosts files (plain, `[host]:port` and hashed entries).
//! - [`transport`]: an SSH session that always verifies the host key, with timeouts,
//!   keepalive, commands and SFTP uploads that survive small windows.
//! - [`artifacts`]: the local build (`NAME.manifest.json` and its filters), hashes checked.
//! - [`node`]: driving a host's node program (`scpc-node serve`): the first probe, bringing
//!   the program, one request and its response per job. Every file operation on a host is the
//!   node program's ([`scpc_node::jobs`]).
//! - [`rollout`]: canaries, waves, bounded concurrency, failure threshold.
//! - [`report`]: what a run reports (typed, `Serialize`, printed as a table).
//!
//! It knows nothing of BPF: it ships files whose sha256 the manifest gives; the node program
//! checks them.
#![deny(missing_docs)]

pub mod ansible;
pub mod artifacts;
pub mod inventory;
pub mod known_hosts;
pub mod node;
pub mod report;
pub mod rollout;
pub mod transport;
