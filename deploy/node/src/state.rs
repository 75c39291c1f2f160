//! `DIR/.scpc/FILE/state.json`: what scpc installed at an install path, newest first, and a
//! change in progress.
//!
//! The file is written only whole (temporary file, `fsync`, rename, `fsync` of the directory)
//! and always says truly what the path may hold: before the filter is renamed into place the
//! state records the change as [`Pending`] (the path holds the old filter or the new one), and
//! only after the rename is durable is it rewritten without it. Whoever reads it next hashes
//! the file at the path and [`State::resolve`]s which of the two it is.
//!
//! Everything read back is validated: the schema (unknown keys refused), digests (64 hex
//! digits, [`Sha256`]), names and bounded printable text. Nothing in it is ever run.

use serde::{Deserialize, Serialize};

use crate::protocol::StepFailure;
use crate::sha256::Sha256;

/// What the history calls a file that was at the path before scpc's first install.
pub const FOUND_ON_HOST: &str = "(found on host)";

/// The longest text field a state file may hold.
const MAX_TEXT: usize = 256;

/// One deployment recorded on a host.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Deployed {
    /// sha256 of the filter.
    pub sha256: Sha256,
    /// Policy name ([`FOUND_ON_HOST`] for a file that was there before scpc).
    pub policy: String,
    /// Architecture of the artifact.
    pub arch: String,
    /// sha256 of the manifest it came from (none for a file found on the host).
    #[serde(default, deserialize_with = "digest_or_empty")]
    pub manifest_sha256: Option<Sha256>,
    /// Compiler version.
    pub compiler: String,
    /// When (RFC 3339, UTC).
    pub time: String,
    /// Who.
    pub operator: String,
}

/// An empty string (what a file found on the host records) or a digest.
fn digest_or_empty<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Sha256>, D::Error> {
    let text: Option<String> = Option::deserialize(d)?;
    match text.as_deref() {
        None | Some("") => Ok(None),
        Some(t) => t.parse().map(Some).map_err(serde::de::Error::custom),
    }
}

/// A change begun and not yet confirmed: the path holds the filter of `history[0]` of the
/// state, or `to` (none: no file).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pending {
    /// What the path holds once the change is done (none: the file removed).
    pub to: Option<Sha256>,
    /// The history once the change is done.
    pub history: Vec<Deployed>,
}

/// How the last change of a path ended, as the node saw it (for a deployer whose session was
/// lost before the answer came back).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Last {
    /// `install`, `rollback` or `remove`.
    pub job: String,
    /// `installed`, `rolled-back`, `reverted`, `removed` or `failed`.
    pub result: String,
    /// The filter the path was meant to hold.
    pub target: Option<Sha256>,
    /// The step that failed, if one did.
    pub failure: Option<StepFailure>,
    /// When.
    pub time: String,
}

/// The state file.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct State {
    /// Install path.
    pub path: String,
    /// Newest first: `history[0]` is what scpc last installed.
    pub history: Vec<Deployed>,
    /// A change in progress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending: Option<Pending>,
    /// How the last change ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last: Option<Last>,
}

/// Why a state file was refused.
#[derive(Debug)]
pub struct StateError {
    /// What is wrong.
    pub reason: String,
}

impl std::fmt::Display for StateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the state file is damaged: {}", self.reason)
    }
}

impl std::error::Error for StateError {}

/// Printable text of bounded length (no control characters).
fn plain_text(field: &str, s: &str) -> Result<(), StateError> {
    if s.len() > MAX_TEXT || s.chars().any(char::is_control) {
        return Err(StateError { reason: format!("`{field}` is longer than {MAX_TEXT} bytes or holds control characters") });
    }
    Ok(())
}

fn check_entry(d: &Deployed) -> Result<(), StateError> {
    let name = |s: &str| !s.is_empty() && s.len() <= 128 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if d.policy != FOUND_ON_HOST && !name(&d.policy) {
        return Err(StateError { reason: "`policy` is not a policy name".into() });
    }
    if !name(&d.arch) {
        return Err(StateError { reason: "`arch` is not an architecture name".into() });
    }
    for (field, text) in [("compiler", &d.compiler), ("time", &d.time), ("operator", &d.operator)] {
        plain_text(field, text)?;
    }
    Ok(())
}

impl State {
    /// An empty state for `path`.
    pub fn new(path: &str) -> State {
        State { path: path.to_string(), ..State::default() }
    }

    /// Reads a state file, refusing anything but the schema with valid digests, names and
    /// bounded text, recorded for `path`.
    pub fn parse(bytes: &[u8], path: &str) -> Result<State, StateError> {
        let state: State = serde_json::from_slice(bytes).map_err(|e| StateError { reason: e.to_string() })?;
        if state.path != path {
            return Err(StateError { reason: format!("it records path `{}`, not `{path}`", state.path) });
        }
        let pending = state.pending.iter().flat_map(|p| p.history.iter());
        for d in state.history.iter().chain(pending) {
            check_entry(d)?;
        }
        if state.history.len() > 1000 {
            return Err(StateError { reason: "more than 1000 history entries".into() });
        }
        if let Some(last) = &state.last {
            for (field, text) in [("last.job", &last.job), ("last.result", &last.result), ("last.time", &last.time)] {
                plain_text(field, text)?;
            }
        }
        Ok(state)
    }

    /// The state as written: pretty JSON and a newline.
    pub fn to_json(&self) -> Vec<u8> {
        let mut text = serde_json::to_vec_pretty(self).unwrap_or_default();
        text.push(b'\n');
        text
    }

    /// What scpc last installed there.
    pub fn current(&self) -> Option<Sha256> {
        self.history.first().map(|d| d.sha256)
    }

    /// Settles a pending change against what the path holds (`actual`): done when the path
    /// holds its result, abandoned otherwise. Returns whether anything changed.
    pub fn resolve(&mut self, actual: Option<Sha256>) -> bool {
        let Some(p) = self.pending.take() else { return false };
        if actual == p.to {
            self.history = p.history;
        }
        true
    }

    /// The sha256 of every version the state keeps a copy of: the current one and `keep`
    /// before it.
    pub fn kept(&self, keep: usize) -> Vec<Sha256> {
        self.history.iter().take(keep + 1).map(|d| d.sha256).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(sha: Sha256) -> Deployed {
        Deployed {
            sha256: sha,
            policy: "web".into(),
            arch: "x86_64".into(),
            manifest_sha256: Some(Sha256::of(b"m")),
            compiler: "scpc 0.1.0".into(),
            time: "2026-01-01T00:00:00Z".into(),
            operator: "ci".into(),
        }
    }

    #[test]
    fn a_pending_change_settles_by_what_the_path_holds() {
        let (a, b) = (Sha256::of(b"a"), Sha256::of(b"b"));
        let mut s = State::new("/etc/scpc/web.bpf");
        s.history = vec![entry(a)];
        s.pending = Some(Pending { to: Some(b), history: vec![entry(b), entry(a)] });
        let json = s.to_json();
        let mut done = State::parse(&json, "/etc/scpc/web.bpf").expect("reads back");
        assert!(done.resolve(Some(b)));
        assert_eq!(done.current(), Some(b));
        let mut abandoned = State::parse(&json, "/etc/scpc/web.bpf").expect("reads back");
        assert!(abandoned.resolve(Some(a)));
        assert_eq!(abandoned.current(), Some(a));
        assert!(abandoned.pending.is_none());
    }

    #[test]
    fn hostile_state_files_are_refused() {
        let good = State { path: "/p".into(), history: vec![entry(Sha256::of(b"a"))], pending: None, last: None };
        let text = String::from_utf8(good.to_json()).expect("utf-8");
        let sha = Sha256::of(b"a").to_string();
        for (what, bad) in [
            ("injected digest", text.replace(&sha, "$(reboot)")),
            ("short digest", text.replace(&sha, "abc")),
            ("unknown key", text.replace("\"policy\"", "\"run\": \"x\", \"policy\"")),
            ("policy name", text.replace("\"web\"", "\"web; rm -rf /\"")),
            ("control character", text.replace("\"ci\"", "\"c\\u001b[2Ji\"")),
            ("other path", text.replace("\"/p\"", "\"/etc/passwd\"")),
            ("not json", "{".to_string()),
        ] {
            assert!(State::parse(bad.as_bytes(), "/p").is_err(), "{what}: {bad}");
        }
        assert_eq!(State::parse(text.as_bytes(), "/p").expect("good"), good);
        // the deployer's earlier format: an empty manifest digest for a file found on the host
        let found = text.replace(&format!("\"manifest_sha256\": \"{}\"", Sha256::of(b"m")), "\"manifest_sha256\": \"\"");
        assert_eq!(State::parse(found.as_bytes(), "/p").expect("found").history[0].manifest_sha256, None);
    }
}
