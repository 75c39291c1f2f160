//! OpenSSH `known_hosts` files: plain, `[host]:port`, wildcard, negated and hashed
//! (`|1|salt|hmac`) host patterns, `@revoked` markers.
//!
//! scpc reads the file itself, not through libssh2, because it needs the key *types* recorded
//! for a host before the handshake: libssh2 picks the host-key algorithm by its own preference,
//! and a host whose ed25519 key is recorded but which offers ecdsa first would be reported as
//! changed (testbed-notes pitfall 4). The transport pins the algorithm to what is recorded.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::{Path, PathBuf};

/// One key line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// 1-based line in the file.
    pub line: usize,
    /// The host patterns, comma-separated as written.
    pub patterns: String,
    /// `@revoked` entries refuse a key; `@cert-authority` entries are skipped.
    pub marker: Option<String>,
    /// Key type (`ssh-ed25519`, `ecdsa-sha2-nistp256`, `ssh-rsa`...).
    pub key_type: String,
    /// The key blob.
    pub key: Vec<u8>,
}

/// What the file says of a host's key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// A recorded key matches.
    Match,
    /// Keys are recorded for the host, none is this one: the key changed (or someone is in
    /// the middle).
    Changed {
        /// The lines that record the host's keys.
        lines: Vec<usize>,
    },
    /// Nothing recorded for the host.
    Unknown,
    /// The key is marked `@revoked`.
    Revoked {
        /// The line.
        line: usize,
    },
}

/// A parsed known_hosts file.
#[derive(Clone, Debug, Default)]
pub struct KnownHosts {
    /// Where it was read from.
    pub path: PathBuf,
    /// Its key lines.
    pub entries: Vec<Entry>,
}

/// The name OpenSSH records for a host: `host` on port 22, `[host]:port` otherwise.
pub fn host_name(host: &str, port: u16) -> String {
    if port == 22 {
        host.to_string()
    } else {
        format!("[{host}]:{port}")
    }
}

/// `SHA256:...` as `ssh-keygen -l` prints it.
pub fn fingerprint(key: &[u8]) -> String {
    let b64 = B64.encode(Sha256::digest(key));
    format!("SHA256:{}", b64.trim_end_matches('='))
}

impl KnownHosts {
    /// Reads a file; a missing file is an empty one. Lines that cannot be read are skipped,
    /// as OpenSSH does.
    pub fn load(path: &Path) -> std::io::Result<KnownHosts> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(e),
        };
        Ok(KnownHosts { path: path.to_path_buf(), entries: parse(&text) })
    }

    /// The entries whose patterns match the host (not `@cert-authority`).
    pub fn entries_for<'a>(&'a self, host: &'a str, port: u16) -> impl Iterator<Item = &'a Entry> + 'a {
        let name = host_name(host, port);
        self.entries.iter().filter(move |e| e.marker.as_deref() != Some("@cert-authority") && matches(&e.patterns, &name))
    }

    /// The key types recorded for the host, in file order, without repeats.
    pub fn key_types(&self, host: &str, port: u16) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for e in self.entries_for(host, port) {
            if e.marker.is_none() && !out.contains(&e.key_type) {
                out.push(e.key_type.clone());
            }
        }
        out
    }

    /// Checks the key a host presented.
    pub fn check(&self, host: &str, port: u16, key_type: &str, key: &[u8]) -> Verdict {
        let mut lines = Vec::new();
        let mut matched = false;
        for e in self.entries_for(host, port) {
            if e.marker.as_deref() == Some("@revoked") {
                if e.key == key {
                    return Verdict::Revoked { line: e.line };
                }
                continue;
            }
            if e.key_type == key_type && e.key == key {
                matched = true;
            } else {
                lines.push(e.line);
            }
        }
        if matched {
            Verdict::Match
        } else if lines.is_empty() {
            Verdict::Unknown
        } else {
            Verdict::Changed { lines }
        }
    }

    /// Appends an entry for a new host (`[host]:port type base64`), creating the file if needed.
    pub fn append(&mut self, host: &str, port: u16, key_type: &str, key: &[u8]) -> std::io::Result<()> {
        let patterns = host_name(host, port);
        let mut f = std::fs::OpenOptions::new().create(true).append(true).open(&self.path)?;
        let existing = std::fs::read(&self.path)?;
        let sep = if existing.is_empty() || existing.ends_with(b"\n") { "" } else { "\n" };
        writeln!(f, "{sep}{patterns} {key_type} {}", B64.encode(key))?;
        f.sync_all()?;
        let line = String::from_utf8_lossy(&existing).lines().count() + 1;
        self.entries.push(Entry { line, patterns, marker: None, key_type: key_type.into(), key: key.to_vec() });
        Ok(())
    }
}

/// Parses the text of a known_hosts file.
pub fn parse(text: &str) -> Vec<Entry> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line_t = line.trim();
        if line_t.is_empty() || line_t.starts_with('#') {
            continue;
        }
        let mut fields = line_t.split_whitespace();
        let mut first = fields.next();
        let mut marker = None;
        if let Some(m) = first.filter(|f| f.starts_with('@')) {
            marker = Some(m.to_string());
            first = fields.next();
        }
        let (Some(patterns), Some(key_type), Some(key)) = (first, fields.next(), fields.next()) else { continue };
        let Ok(key) = B64.decode(key) else { continue };
        out.push(Entry { line: i + 1, patterns: patterns.to_string(), marker, key_type: key_type.to_string(), key });
    }
    out
}

/// Whether a comma-separated pattern list matches the name OpenSSH looks up (`host`, or
/// `[host]:port` off port 22): any positive match and no negated match; hashed entries
/// compare the HMAC-SHA1 of the name.
fn matches(patterns: &str, name: &str) -> bool {
    if let Some(rest) = patterns.strip_prefix("|1|") {
        let Some((salt, hash)) = rest.split_once('|') else { return false };
        let (Ok(salt), Ok(hash)) = (B64.decode(salt), B64.decode(hash)) else { return false };
        let Ok(mut mac) = Hmac::<Sha1>::new_from_slice(&salt) else { return false };
        mac.update(name.as_bytes());
        return mac.verify_slice(&hash).is_ok();
    }
    let mut positive = false;
    for p in patterns.split(',') {
        let (neg, p) = match p.strip_prefix('!') {
            Some(p) => (true, p),
            None => (false, p),
        };
        let hit = glob(p, name);
        if hit && neg {
            return false;
        }
        positive |= hit;
    }
    positive
}

/// `*` and `?` wildcards, case-insensitive as host names are.
fn glob(pattern: &str, name: &str) -> bool {
    fn go(p: &[u8], n: &[u8]) -> bool {
        match (p.first(), n.first()) {
            (None, None) => true,
            (Some(b'*'), _) => go(&p[1..], n) || (!n.is_empty() && go(p, &n[1..])),
            (Some(b'?'), Some(_)) => go(&p[1..], &n[1..]),
            (Some(a), Some(b)) if a.eq_ignore_ascii_case(b) => go(&p[1..], &n[1..]),
            _ => false,
        }
    }
    go(pattern.as_bytes(), name.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl";

    #[test]
    fn plain_bracketed_wildcard_negated() {
        let kh = parse(&format!("gw1,10.0.0.1 ssh-ed25519 {KEY}\n[10.0.0.2]:2222 ssh-ed25519 {KEY}\n*.plant ssh-ed25519 {KEY}\n"));
        assert!(matches(&kh[0].patterns, &host_name("10.0.0.1", 22)));
        assert!(!matches(&kh[0].patterns, &host_name("10.0.0.1", 2222)), "port-less entries are for port 22");
        assert!(matches(&kh[1].patterns, &host_name("10.0.0.2", 2222)));
        assert!(!matches(&kh[1].patterns, &host_name("10.0.0.2", 22)));
        assert!(matches(&kh[2].patterns, &host_name("a.plant", 22)));
        assert!(!matches("*.plant,!bad.plant", &host_name("bad.plant", 22)));
    }

    #[test]
    fn hashed_entry_from_ssh_keygen() {
        // `ssh-keygen -H` of "[127.0.0.1]:2301 ssh-ed25519 ..." with salt 16 zero bytes
        let salt = [0u8; 20];
        let mut mac = Hmac::<Sha1>::new_from_slice(&salt).expect("any key length");
        mac.update(b"[127.0.0.1]:2301");
        let hash = mac.finalize().into_bytes();
        let line = format!("|1|{}|{} ssh-ed25519 {KEY}\n", B64.encode(salt), B64.encode(hash));
        let kh = KnownHosts { path: PathBuf::new(), entries: parse(&line) };
        let key = B64.decode(KEY).expect("base64");
        assert_eq!(kh.check("127.0.0.1", 2301, "ssh-ed25519", &key), Verdict::Match);
        assert_eq!(kh.check("127.0.0.1", 2302, "ssh-ed25519", &key), Verdict::Unknown);
        assert_eq!(kh.check("127.0.0.1", 2301, "ssh-ed25519", &key[..10]), Verdict::Changed { lines: vec![1] });
        assert_eq!(kh.key_types("127.0.0.1", 2301), vec!["ssh-ed25519".to_string()]);
    }

    #[test]
    fn revoked_and_fingerprint() {
        let key = B64.decode(KEY).expect("base64");
        let kh = KnownHosts { path: PathBuf::new(), entries: parse(&format!("@revoked * ssh-ed25519 {KEY}\n")) };
        assert_eq!(kh.check("h", 22, "ssh-ed25519", &key), Verdict::Revoked { line: 1 });
        assert!(fingerprint(&key).starts_with("SHA256:") && !fingerprint(&key).ends_with('='));
    }
}
