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

/// The node programs a deployment brings to hosts that lack them: `DIR/ARCH/scpc-node`, one
/// per architecture (`deploy/node/build.sh DIR` builds them).
#[derive(Clone, Debug, Default)]
pub struct NodePrograms {
    /// Where they were found.
    pub dir: PathBuf,
    /// Per architecture (scpc's name), the program's bytes and sha256.
    pub programs: Vec<(String, Vec<u8>, Sha256)>,
}

/// The architectures a node program is built for.
pub const NODE_ARCHES: [&str; 5] = ["x86_64", "aarch64", "arm", "i386", "riscv64"];

/// The node programs cannot be read.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[error("no node programs in `{}`: {why}", dir.display())]
#[diagnostic(
    code(scpc::artifacts::node_programs),
    help("build them with `deploy/node/build.sh DIR` and name DIR with `node_programs = \"DIR\"` in the inventory or SCPC_NODE_PROGRAMS")
)]
pub struct NodeProgramsError {
    /// The directory.
    pub dir: PathBuf,
    /// Why.
    pub why: String,
}

impl NodePrograms {
    /// Reads `DIR/ARCH/scpc-node` for every architecture that has one (at least one must).
    pub fn load(dir: &Path) -> Result<NodePrograms, NodeProgramsError> {
        let mut programs = Vec::new();
        for arch in NODE_ARCHES {
            let path = dir.join(arch).join("scpc-node");
            match std::fs::read(&path) {
                Ok(bytes) => {
                    let sha = Sha256::of(&bytes);
                    programs.push((arch.to_string(), bytes, sha));
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(NodeProgramsError { dir: dir.into(), why: format!("{}: {e}", path.display()) }),
            }
        }
        if programs.is_empty() {
            return Err(NodeProgramsError { dir: dir.into(), why: format!("none of {} holds `scpc-node`", NODE_ARCHES.join(", ")) });
        }
        Ok(NodePrograms { dir: dir.into(), programs })
    }

    /// Where to look: the inventory's `node_programs`, else `$SCPC_NODE_PROGRAMS`, else
    /// `node-programs` beside the running program.
    pub fn locate(from_inventory: Option<&Path>) -> PathBuf {
        if let Some(d) = from_inventory {
            return d.to_path_buf();
        }
        if let Some(d) = std::env::var_os("SCPC_NODE_PROGRAMS") {
            return PathBuf::from(d);
        }
        let exe = std::env::current_exe().ok();
        exe.as_deref().and_then(Path::parent).unwrap_or(Path::new(".")).join("node-programs")
    }

    /// The program for an architecture.
    pub fn for_arch(&self, arch: &str) -> Option<(&[u8], Sha256)> {
        self.programs.iter().find(|(a, _, _)| a == arch).map(|(_, b, s)| (b.as_slice(), *s))
    }

    /// The sha256 of every program.
    pub fn digests(&self) -> Vec<Sha256> {
        self.programs.iter().map(|(_, _, s)| *s).collect()
    }
}

/// The scpc architecture of a program from the first 20 bytes of its ELF header (class,
/// byte order, `e_machine`): what a node program must be built for to run where that program
/// runs.
pub fn arch_of_elf(header: &[u8]) -> Option<&'static str> {
    if header.len() < 20 || &header[..4] != b"\x7fELF" || header[5] != 1 {
        return None;
    }
    let machine = u16::from_le_bytes([header[18], header[19]]);
    Some(match (header[4], machine) {
        (2, 0x3e) => "x86_64",
        (1, 0x03) => "i386",
        (2, 0xb7) => "aarch64",
        (1, 0x28) => "arm",
        (2, 0xf3) => "riscv64",
        _ => return None,
    })
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

    #[test]
    fn elf_headers() {
        let mut h = b"\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x03\x00\x3e\x00".to_vec();
        assert_eq!(arch_of_elf(&h), Some("x86_64"));
        h[4] = 1;
        h[18] = 0x28;
        assert_eq!(arch_of_elf(&h), Some("arm"));
        h[5] = 2;
        assert_eq!(arch_of_elf(&h), None, "big-endian");
        assert_eq!(arch_of_elf(b"#!/bin/sh"), None);
    }
}
