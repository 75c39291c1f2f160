//! A call as a person writes it (`scpc sim FILTER --arch ARCH SYSCALL [ARG...]`): a syscall
//! name or number of the architecture, and up to six arguments, each a number (decimal, `0x`,
//! `0o`, `0b`, `_` separators; negative values are two's complement) or a constant of the
//! architecture (`O_RDONLY`).

use crate::abi::Arch;
use crate::suggest::did_you_mean;

/// Why a written call is not one.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, miette::Diagnostic)]
pub enum CallError {
    /// Neither a syscall name of the architecture nor a number.
    #[error("`{syscall}` is not a syscall of {arch}: {help}")]
    #[diagnostic(code(scpc::call::unknown_syscall))]
    UnknownSyscall {
        /// What was written.
        syscall: String,
        /// The architecture.
        arch: Arch,
        /// The closest name, or what to write.
        help: String,
    },
    /// More than six arguments.
    #[error("a syscall has at most 6 arguments")]
    #[diagnostic(code(scpc::call::too_many_args))]
    TooManyArgs,
    /// An argument that is neither a number nor a constant.
    #[error("argument {index} `{text}` is neither a number nor a constant of {arch}")]
    #[diagnostic(code(scpc::call::bad_arg))]
    BadArg {
        /// 1-based position.
        index: usize,
        /// What was written.
        text: String,
        /// The architecture.
        arch: Arch,
    },
}

/// A number as `scpc sim` takes it.
pub fn number(s: &str) -> Option<u64> {
    let (neg, s) = s.strip_prefix('-').map_or((false, s), |r| (true, r));
    let s = s.replace('_', "");
    let v = if let Some(h) = s.strip_prefix("0x") {
        u64::from_str_radix(h, 16).ok()?
    } else if let Some(o) = s.strip_prefix("0o") {
        u64::from_str_radix(o, 8).ok()?
    } else if let Some(b) = s.strip_prefix("0b") {
        u64::from_str_radix(b, 2).ok()?
    } else {
        s.parse().ok()?
    };
    Some(if neg { v.wrapping_neg() } else { v })
}

/// `seccomp_data.nr` and `.args` of a written call on `arch`.
pub fn parse(arch: Arch, syscall: &str, args: &[String]) -> Result<(u32, [u64; 6]), CallError> {
    let table = arch.table();
    let nr = table.syscall(syscall).map(|s| s.nr).or_else(|| number(syscall).and_then(|n| u32::try_from(n).ok())).ok_or_else(|| {
        let help = did_you_mean(syscall, table.syscalls.iter().map(|s| s.name), "give a syscall name or number");
        CallError::UnknownSyscall { syscall: syscall.to_string(), arch, help }
    })?;
    if args.len() > 6 {
        return Err(CallError::TooManyArgs);
    }
    let mut values = [0u64; 6];
    for (i, s) in args.iter().enumerate() {
        values[i] = number(s).or_else(|| table.constant(s)).ok_or_else(|| CallError::BadArg { index: i + 1, text: s.clone(), arch })?;
    }
    Ok((nr, values))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_numbers_and_constants() {
        let args = ["-1".to_string(), "0x10".into(), "O_RDONLY".into(), "1_000".into()];
        assert_eq!(parse(Arch::X86_64, "openat", &args), Ok((257, [u64::MAX, 16, 0, 1000, 0, 0])));
        assert_eq!(parse(Arch::X86_64, "39", &[]).map(|c| c.0), Ok(39));
        assert!(matches!(parse(Arch::X86_64, "opneat", &[]), Err(CallError::UnknownSyscall { help, .. }) if help.contains("openat")));
        assert_eq!(parse(Arch::X86_64, "read", &["x".into()]), Err(CallError::BadArg { index: 1, text: "x".into(), arch: Arch::X86_64 }));
        assert_eq!(parse(Arch::X86_64, "read", &vec!["0".to_string(); 7]), Err(CallError::TooManyArgs));
    }
}
