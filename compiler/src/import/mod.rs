//! Other tools' formats read into scpc's: seccomp audit logs ([`audit`]: records, for
//! `explain`, `profile` and `generate`) and traces ([`trace`]: `strace -c`, `strace -f`, TSV
//! and audit logs, into call counts and frequency profiles); other tools' seccomp policies as
//! .scp: Firecracker's seccompiler JSON ([`seccompiler`]), minijail's `.policy` files
//! ([`minijail`]) and kafel, nsjail's language ([`kafel`]). (The Docker/OCI profile importer
//! is [`crate::docker`], to move here.)
//!
//! Every policy importer holds to the same rules: the file is read into typed values (a value
//! of the wrong kind is an error located by line and column, or JSON path), no text of the
//! file becomes policy text except names the ABI tables know and numbers, everything else it
//! carries (comments, names) goes into `#` comments through [`comment_text`] (control
//! characters escaped, `scpc:` defused), and the translation is checked by scpc's own checker
//! before it is returned: what an importer returns always checks.

pub mod audit;
pub mod kafel;
pub mod minijail;
pub mod seccompiler;
pub mod trace;

pub use crate::docker::comment_text;

/// Why a policy of another tool was not imported.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum ImportError {
    /// The file cannot be read (or one it includes).
    #[error("cannot read `{path}`: {reason}")]
    #[diagnostic(code(scpc::import::unreadable))]
    Unreadable {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// The file does not parse in its format.
    #[error("{source_name}:{location}: {message}")]
    #[diagnostic(code(scpc::import::parse))]
    Parse {
        /// The file.
        source_name: String,
        /// `LINE:COLUMN`, or a JSON path with its line and column.
        location: String,
        /// What is wrong.
        message: String,
        /// What the format expects there.
        #[help]
        help: String,
    },
    /// A value the format has, but that no kernel takes or that scpc cannot name (an unknown
    /// syscall, an errno out of range).
    #[error("{source_name}:{location}: {message}")]
    #[diagnostic(code(scpc::import::bad_value))]
    Value {
        /// The file.
        source_name: String,
        /// Where.
        location: String,
        /// What is wrong.
        message: String,
        /// What to do.
        #[help]
        help: String,
    },
    /// A construct of the format that .scp cannot say.
    #[error("{source_name}:{location}: {construct}: .scp cannot express this")]
    #[diagnostic(code(scpc::import::inexpressible))]
    Inexpressible {
        /// The file.
        source_name: String,
        /// Where.
        location: String,
        /// The construct.
        construct: String,
        /// Why, and what to do instead.
        #[help]
        help: String,
    },
    /// The translation does not pass scpc's checker (a bug of the importer, or a value the
    /// checker refuses).
    #[error("{source_name}: the translation does not check: {message}")]
    #[diagnostic(code(scpc::import::translation))]
    Check {
        /// The file.
        source_name: String,
        /// The checker's first complaint.
        message: String,
        /// Its help.
        #[help]
        help: String,
    },
}

/// `text` (a translation of `source_name`) if scpc's checker finds no error in it.
pub(crate) fn checked(source_name: &str, text: String) -> Result<String, ImportError> {
    let (_, diags, _) = crate::check_source("imported.scp", &text);
    if diags.has_errors() {
        let first = diags.into_sorted().into_iter().find(|d| d.severity().is_none_or(|s| s == miette::Severity::Error));
        return Err(ImportError::Check {
            source_name: source_name.into(),
            message: first.as_ref().map_or_else(|| "no diagnostic".into(), |d| d.to_string()),
            help: first.and_then(|d| d.help().map(|h| h.to_string())).unwrap_or_else(|| "report the file".into()),
        });
    }
    Ok(text)
}

/// A name of the imported file as a policy name: letters, digits and `_`, not starting with
/// a digit (`fw-vmm` → `fw_vmm`, `9p` → `p_9p`).
pub(crate) fn policy_name(raw: &str) -> String {
    let id: String = raw.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect();
    match id.chars().next() {
        None => "imported".to_string(),
        Some(c) if c.is_ascii_digit() => format!("p_{id}"),
        _ => id,
    }
}

/// A number as .scp writes it: decimal up to 255, hex above.
pub(crate) fn number(n: u64) -> String {
    if n > 255 {
        format!("{n:#x}")
    } else {
        n.to_string()
    }
}

/// The name `arg{index}` stands for in `syscall`'s signature on `arch` (one register, not half
/// of a pair), with the width the kernel reads it at; `argN` at the register width when the
/// signature has none there.
pub(crate) fn param(arch: crate::abi::Arch, syscall: &str, index: u8) -> (String, crate::abi::Width) {
    let default = if arch.is_32bit() { crate::abi::Width::W32 } else { crate::abi::Width::W64 };
    arch.table()
        .syscall(syscall)
        .and_then(|s| s.params.iter().find(|p| p.reg == index && p.reg_hi.is_none()))
        .map_or_else(|| (format!("arg{index}"), default), |p| (p.name.to_string(), p.width))
}

/// Most alternatives written in one rule's condition: the language caps an expression at
/// [`scpc_lang::syntax::MAX_DEPTH`] operators, so a longer `||` is written as consecutive
/// rules of the same head, which decide the same (the first that matches decides, and each
/// takes the same action).
const ALTERNATIVES_PER_RULE: usize = 100;

/// `HEAD if A || B || ...` as one rule per [`ALTERNATIVES_PER_RULE`] alternatives, each line
/// indented by four spaces; each alternative is parenthesized when `parenthesize` is set.
pub(crate) fn rules_for(head: &str, alternatives: &[String], parenthesize: bool) -> String {
    let mut out = String::new();
    for chunk in alternatives.chunks(ALTERNATIVES_PER_RULE) {
        let cond = if chunk.len() == 1 || !parenthesize {
            chunk.join(" || ")
        } else {
            chunk.iter().map(|t| format!("({t})")).collect::<Vec<_>>().join(" || ")
        };
        out += &format!("    {head} if {cond}\n");
    }
    out
}
