//! SHA-256 digests as the wire contract spells them: 32 bytes, written as 64 lowercase hex
//! digits in manifests, state files and reports. The one digest helper of the workspace
//! ([`Sha256::of`]); parsing refuses anything but 64 hex digits, so a digest read from a file
//! or a host can never carry other text along.

use std::fmt;
use std::str::FromStr;

use sha2::Digest;

/// A SHA-256 digest.
#[derive(Copy, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Sha256(pub [u8; 32]);

/// Why a text is not a digest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DigestError {
    /// Not 64 characters long.
    Length {
        /// The length found (in bytes).
        found: usize,
    },
    /// A character that is not a hex digit.
    NotHex {
        /// Its byte offset.
        at: usize,
    },
}

impl DigestError {
    /// The error's stable code.
    pub fn code(&self) -> &'static str {
        match self {
            DigestError::Length { .. } => "scpc::node::digest::length",
            DigestError::NotHex { .. } => "scpc::node::digest::not_hex",
        }
    }
}

impl fmt::Display for DigestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DigestError::Length { found } => write!(f, "a sha256 is 64 hex digits, not {found} characters"),
            DigestError::NotHex { at } => write!(f, "a sha256 is 64 hex digits: character {} is not one", at + 1),
        }
    }
}

impl std::error::Error for DigestError {}

impl Sha256 {
    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Sha256 {
        Sha256(sha2::Sha256::digest(bytes).into())
    }

    /// The first 12 hex digits, for tables.
    pub fn short(&self) -> String {
        self.to_string()[..12].to_string()
    }
}

impl fmt::Display for Sha256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Sha256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sha256({self})")
    }
}

impl FromStr for Sha256 {
    type Err = DigestError;

    /// 64 hex digits (either case).
    fn from_str(s: &str) -> Result<Sha256, DigestError> {
        if s.len() != 64 {
            return Err(DigestError::Length { found: s.len() });
        }
        let digit = |at: usize| -> Result<u8, DigestError> {
            let c = s.as_bytes()[at];
            (c as char).to_digit(16).map(|d| d as u8).ok_or(DigestError::NotHex { at })
        };
        let mut out = [0u8; 32];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = digit(2 * i)? << 4 | digit(2 * i + 1)?;
        }
        Ok(Sha256(out))
    }
}

impl serde::Serialize for Sha256 {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Sha256 {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Sha256, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_digests_print_and_parse_back() {
        let empty = Sha256::of(b"");
        assert_eq!(empty.to_string(), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
        assert_eq!(empty.short(), "e3b0c44298fc");
        assert_eq!("E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855".parse(), Ok(empty));
        let json = serde_json::to_string(&empty).expect("serializes");
        assert_eq!(json, "\"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\"");
        assert_eq!(serde_json::from_str::<Sha256>(&json).expect("reads back"), empty);
    }

    #[test]
    fn anything_but_64_hex_digits_is_refused() {
        assert_eq!("abc".parse::<Sha256>(), Err(DigestError::Length { found: 3 }));
        let injected = format!("{}; rm -rf /", "0".repeat(54));
        assert_eq!(injected.parse::<Sha256>(), Err(DigestError::NotHex { at: 54 }));
        // a multi-byte character of the right byte length
        let wide = format!("{}é", "0".repeat(62));
        assert!(wide.parse::<Sha256>().is_err());
        assert!(serde_json::from_str::<Sha256>("\"$(reboot)\"").is_err());
    }
}
