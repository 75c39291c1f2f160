//! The build contract: `NAME.manifest.json` and the file names of a build, written by the
//! compiler ([`Manifest::to_json`]) and read back by the deployer ([`Manifest::from_json`])
//! through this one type, so the two can never disagree about a field.
//!
//! A build of policy `NAME` is a directory holding `NAME.manifest.json` ([`manifest_file`]),
//! one `NAME.ARCH.bpf` per target ([`filter_file`]), and the renderings `--emit` asks for
//! ([`rendering_file`], [`oci_file`]).

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::sha256::Sha256;

/// `NAME.manifest.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// The policy.
    pub policy: String,
    /// `scpc VERSION`.
    pub compiler: String,
    /// Every source file of the unit, with its sha256, sorted by name.
    pub sources: Vec<SourceEntry>,
    /// The frequency profile used.
    pub profile: String,
    /// Whether every non-allow decision was turned into `log`.
    pub audit: bool,
    /// The oldest kernel (`MAJOR.MINOR`).
    pub kernel: String,
    /// One per filter.
    pub targets: Vec<TargetEntry>,
}

/// A source file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceEntry {
    /// Its name.
    pub file: String,
    /// Its sha256.
    pub sha256: Sha256,
}

/// A filter file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetEntry {
    /// Host architecture (`x86_64`, `aarch64`, `arm`...).
    pub arch: String,
    /// The architectures it dispatches on.
    pub archs: Vec<String>,
    /// `NAME.ARCH.bpf` ([`filter_file`]).
    pub file: String,
    /// Its sha256.
    pub sha256: Sha256,
    /// Instructions.
    pub instructions: usize,
    /// The default action.
    pub default_action: String,
    /// Whether audit-only.
    pub audit: bool,
}

/// The manifest's file name for policy `policy`.
pub fn manifest_file(policy: &str) -> String {
    format!("{policy}.manifest.json")
}

/// The filter's file name for policy `policy` on a host of architecture `arch`.
pub fn filter_file(policy: &str, arch: &str) -> String {
    rendering_file(policy, arch, "bpf")
}

/// The file name of a rendering of a filter (`NAME.ARCH.EXTENSION`).
pub fn rendering_file(policy: &str, arch: &str, extension: &str) -> String {
    format!("{policy}.{arch}.{extension}")
}

/// The Docker/OCI profile's file name (one for every target).
pub fn oci_file(policy: &str) -> String {
    format!("{policy}.oci.json")
}

/// Why a manifest cannot be read.
#[derive(Debug)]
pub enum ManifestError {
    /// Not JSON, or not the manifest's shape.
    Json {
        /// serde_json's reason, with line and column.
        reason: String,
    },
    /// A policy or architecture name that is not a plain name (letters, digits, `_`).
    BadName {
        /// The name.
        name: String,
    },
    /// A target whose file is not `NAME.ARCH.bpf`.
    OddFile {
        /// The file it names.
        file: String,
        /// The name it should have.
        expected: String,
    },
}

impl ManifestError {
    /// The error's stable code.
    pub fn code(&self) -> &'static str {
        match self {
            ManifestError::Json { .. } => "scpc::node::manifest::json",
            ManifestError::BadName { .. } => "scpc::node::manifest::bad_name",
            ManifestError::OddFile { .. } => "scpc::node::manifest::odd_file",
        }
    }
}

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ManifestError::Json { reason } => write!(f, "not an scpc manifest: {reason}"),
            ManifestError::BadName { name } => {
                write!(f, "`{name}` is not a policy name (a letter or `_`, then letters, digits, `_` and `-`) or an architecture name")
            }
            ManifestError::OddFile { file, expected } => write!(f, "names an odd file `{file}` (a build names its filters `{expected}`)"),
        }
    }
}

impl std::error::Error for ManifestError {}

/// An architecture name: letters, digits and `_`.
fn plain(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// A policy name, as the language writes one (`policy modbus-gateway`): a letter or `_`, then
/// letters, digits, `_` and `-`. The one definition of the rule: the grammar's `policy_name`
/// (held to it by the compiler's tests), the build's file names (`NAME.ARCH.bpf`), manifests
/// and inventories all follow it; no such name holds `/`, `.` or a leading `-`.
pub fn is_policy_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_alphabetic() || b == b'_') && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

impl Manifest {
    /// The manifest as written to `NAME.manifest.json`: pretty JSON and a newline.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a manifest of strings, numbers and digests always serializes") + "\n"
    }

    /// Reads a manifest, checking that every name in it is plain and every filter has the
    /// name [`filter_file`] gives it (so no name reaches outside the build's directory).
    pub fn from_json(bytes: &[u8]) -> Result<Manifest, ManifestError> {
        let m: Manifest = serde_json::from_slice(bytes).map_err(|e| ManifestError::Json { reason: e.to_string() })?;
        if !is_policy_name(&m.policy) {
            return Err(ManifestError::BadName { name: m.policy.clone() });
        }
        for name in m.targets.iter().map(|t| &t.arch) {
            if !plain(name) {
                return Err(ManifestError::BadName { name: name.clone() });
            }
        }
        for t in &m.targets {
            let expected = filter_file(&m.policy, &t.arch);
            if t.file != expected {
                return Err(ManifestError::OddFile { file: t.file.clone(), expected });
            }
        }
        Ok(m)
    }

    /// The target for a host architecture.
    pub fn target(&self, arch: &str) -> Option<&TargetEntry> {
        self.targets.iter().find(|t| t.arch == arch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Manifest {
        let sha = Sha256::of(b"filter");
        Manifest {
            policy: "web".into(),
            compiler: "scpc 0.1.0".into(),
            sources: vec![SourceEntry { file: "web.scp".into(), sha256: Sha256::of(b"source") }],
            profile: "builtin".into(),
            audit: false,
            kernel: "4.14".into(),
            targets: vec![TargetEntry {
                arch: "x86_64".into(),
                archs: vec!["x86_64".into(), "i386".into()],
                file: filter_file("web", "x86_64"),
                sha256: sha,
                instructions: 12,
                default_action: "kill_process".into(),
                audit: false,
            }],
        }
    }

    #[test]
    fn written_once_read_back_the_same() {
        let m = sample();
        let json = m.to_json();
        assert!(json.ends_with("}\n"));
        assert_eq!(Manifest::from_json(json.as_bytes()).expect("reads back"), m);
        assert_eq!(manifest_file("web"), "web.manifest.json");
        assert_eq!(rendering_file("web", "arm", "h"), "web.arm.h");
        assert_eq!(oci_file("web"), "web.oci.json");
    }

    #[test]
    fn hyphenated_policy_names_are_policy_names() {
        let mut m = sample();
        m.policy = "modbus-gateway".into();
        m.targets[0].file = filter_file("modbus-gateway", "x86_64");
        assert_eq!(Manifest::from_json(m.to_json().as_bytes()).expect("a hyphenated name reads back"), m);
        for bad in ["-web", "9web", "web.x", "a/b", "", "web gw", "wéb"] {
            assert!(!is_policy_name(bad), "{bad:?}");
        }
        for good in ["web", "_x", "modbus-gateway", "a-b-c_9"] {
            assert!(is_policy_name(good), "{good:?}");
        }
    }

    #[test]
    fn names_that_reach_elsewhere_are_refused() {
        let mut m = sample();
        m.targets[0].file = "../../etc/passwd".into();
        let e = Manifest::from_json(m.to_json().as_bytes()).expect_err("odd file");
        assert_eq!(e.code(), "scpc::node::manifest::odd_file");
        let mut m = sample();
        m.targets[0].arch = "x86_64/../..".into();
        m.targets[0].file = filter_file(&m.policy, &m.targets[0].arch);
        assert_eq!(Manifest::from_json(m.to_json().as_bytes()).expect_err("bad arch").code(), "scpc::node::manifest::bad_name");
        let text = m.to_json().replace("\"sha256\": \"", "\"sha256\": \"zz");
        assert_eq!(Manifest::from_json(text.as_bytes()).expect_err("bad digest").code(), "scpc::node::manifest::json");
    }
}
