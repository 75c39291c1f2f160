//! The local build a deployment ships: `NAME.manifest.json` and the `NAME.ARCH.bpf` files it
//! names, as `scpc build -o DIR` writes them. Every file's sha256 is checked against the
//! manifest before anything leaves this machine.

use scpc_node::manifest::{manifest_file, Manifest, ManifestError};
use scpc_node::Sha256;
use std::path::{Path, PathBuf};

/// Why the local build cannot be shipped.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum ArtifactError {
    /// The manifest cannot be read.
    #[error("cannot read `{}`: {source} (run `scpc build ... -o {}` first)", path.display(), dir.display())]
    #[diagnostic(code(scpc::artifacts::no_manifest))]
    NoManifest {
        /// The manifest's path.
        path: PathBuf,
        /// The artifact directory.
        dir: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The manifest is not one scpc writes.
    #[error("`{}`: {error}", path.display())]
    #[diagnostic(code(scpc::artifacts::bad_manifest))]
    BadManifest {
        /// The manifest's path.
        path: PathBuf,
        /// Why.
        error: ManifestError,
    },
    /// The manifest is of another policy.
    #[error("`{}` is the manifest of policy `{found}`, not `{expected}`", path.display())]
    #[diagnostic(code(scpc::artifacts::other_policy))]
    OtherPolicy {
        /// The manifest's path.
        path: PathBuf,
        /// The policy it names.
        found: String,
        /// The policy the inventory wants.
        expected: String,
    },
    /// A filter the manifest names cannot be read.
    #[error("cannot read `{}`: {source}", path.display())]
    #[diagnostic(code(scpc::artifacts::unreadable))]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A filter is not the one the manifest describes.
    #[error("`{}` has sha256 {found}, but the manifest says {expected}: rebuild before deploying", path.display())]
    #[diagnostic(code(scpc::artifacts::digest))]
    Digest {
        /// The file.
        path: PathBuf,
        /// Its sha256.
        found: Sha256,
        /// The manifest's.
        expected: Sha256,
    },
}

/// One architecture's filter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Artifact {
    /// The architecture it is built for (`x86_64`, `aarch64`, `arm`...).
    pub arch: String,
    /// File name in the artifact directory.
    pub file: String,
    /// Its bytes.
    pub bytes: Vec<u8>,
    /// Their sha256.
    pub sha256: Sha256,
}

/// A policy's build.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Build {
    /// Policy name.
    pub policy: String,
    /// The compiler that built it.
    pub compiler: String,
    /// The oldest kernel the policy supports (`kernel >=`), as written in the manifest.
    pub kernel: Option<String>,
    /// sha256 of the manifest file itself: identifies the build.
    pub manifest_sha256: Sha256,
    /// Per architecture.
    pub artifacts: Vec<Artifact>,
}

impl Build {
    /// Reads `DIR/POLICY.manifest.json` and its filters.
    pub fn load(dir: &Path, policy: &str) -> Result<Build, ArtifactError> {
        let mpath = dir.join(manifest_file(policy));
        let text = std::fs::read(&mpath).map_err(|source| ArtifactError::NoManifest { path: mpath.clone(), dir: dir.into(), source })?;
        let manifest = Manifest::from_json(&text).map_err(|error| ArtifactError::BadManifest { path: mpath.clone(), error })?;
        if manifest.policy != policy {
            return Err(ArtifactError::OtherPolicy { path: mpath, found: manifest.policy, expected: policy.to_string() });
        }
        let mut artifacts = Vec::new();
        for t in manifest.targets {
            let path = dir.join(&t.file);
            let bytes = std::fs::read(&path).map_err(|source| ArtifactError::Unreadable { path: path.clone(), source })?;
            let got = Sha256::of(&bytes);
            if got != t.sha256 {
                return Err(ArtifactError::Digest { path, found: got, expected: t.sha256 });
            }
            artifacts.push(Artifact { arch: t.arch, file: t.file, bytes, sha256: got });
        }
        Ok(Build {
            policy: manifest.policy,
            compiler: manifest.compiler,
            kernel: Some(manifest.kernel),
            manifest_sha256: Sha256::of(&text),
            artifacts,
        })
    }

    /// The filter for a host architecture (`uname -m` already mapped, see [`arch_of_uname`]).
    pub fn for_arch(&self, arch: &str) -> Option<&Artifact> {
        self.artifacts.iter().find(|a| a.arch == arch)
    }

    /// The architectures built.
    pub fn arches(&self) -> Vec<&str> {
        self.artifacts.iter().map(|a| a.arch.as_str()).collect()
    }
}

/// The scpc architecture of a `uname -m` answer.
pub fn arch_of_uname(machine: &str) -> Option<&'static str> {
    Some(match machine.trim() {
        "x86_64" | "amd64" => "x86_64",
        "aarch64" | "arm64" | "aarch64_be" => "aarch64",
        m if m.starts_with("armv") || m == "arm" => "arm",
        "i386" | "i486" | "i586" | "i686" => "i386",
        "riscv64" => "riscv64",
        _ => return None,
    })
}

/// `(major, minor)` of a kernel release (`6.1.0-56-arm64` → (6, 1)).
pub fn kernel_version(release: &str) -> Option<(u32, u32)> {
    let mut it = release.trim().split(|c: char| !c.is_ascii_digit());
    let major = it.next()?.parse().ok()?;
    let minor = it.next().and_then(|m| m.parse().ok()).unwrap_or(0);
    Some((major, minor))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uname_and_kernel() {
        assert_eq!(arch_of_uname("armv7l"), Some("arm"));
        assert_eq!(arch_of_uname("armv6l\n"), Some("arm"));
        assert_eq!(arch_of_uname("i686"), Some("i386"));
        assert_eq!(arch_of_uname("mips"), None);
        assert_eq!(kernel_version("6.1.0-56-arm64"), Some((6, 1)));
        assert_eq!(kernel_version("4.14"), Some((4, 14)));
        assert_eq!(kernel_version("5"), Some((5, 0)));
        assert_eq!(kernel_version("x"), None);
    }
}
