//! Diagnostics are data: each stage has an error enum deriving [`miette::Diagnostic`], and
//! every check pushes into one [`Diagnostics`] sink and carries on. Only the driver decides to
//! stop, between stages.

use std::collections::HashSet;

use miette::{Diagnostic, Severity, SourceSpan};
use thiserror::Error;

/// A diagnostic of any stage.
pub type BoxedDiagnostic = Box<dyn Diagnostic + Send + Sync + 'static>;

/// (code, primary span, message): what makes two diagnostics the same.
type DedupKey = (String, Option<(usize, usize)>, String);

/// The collected diagnostics of a run, in the order they were found, without duplicates (the
/// same message at the same place, which layered policies and several targets would repeat).
#[derive(Default)]
pub struct Diagnostics {
    items: Vec<BoxedDiagnostic>,
    seen: HashSet<DedupKey>,
}

impl std::fmt::Debug for Diagnostics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.items.iter().map(|d| match d.help() {
                Some(help) => format!("{d} (help: {help})"),
                None => d.to_string(),
            }))
            .finish()
    }
}

/// Whether a diagnostic is an error (miette's default severity).
pub fn is_error(d: &dyn Diagnostic) -> bool {
    matches!(d.severity(), None | Some(Severity::Error))
}

/// The primary span of a diagnostic: the label marked primary, else the first label.
pub fn primary_span(d: &dyn Diagnostic) -> Option<SourceSpan> {
    let labels: Vec<_> = d.labels()?.collect();
    labels.iter().find(|l| l.primary()).or(labels.first()).map(|l| *l.inner())
}

impl Diagnostics {
    /// An empty sink.
    pub fn new() -> Diagnostics {
        Diagnostics::default()
    }

    /// Records a diagnostic unless the same one is already there.
    pub fn push(&mut self, d: impl Diagnostic + Send + Sync + 'static) {
        let code = d.code().map(|c| c.to_string()).unwrap_or_default();
        let span = primary_span(&d).map(|s| (s.offset(), s.len()));
        if self.seen.insert((code, span, d.to_string())) {
            self.items.push(Box::new(d));
        }
    }

    /// Whether any error (not warning) was recorded.
    pub fn has_errors(&self) -> bool {
        self.items.iter().any(|d| is_error(d.as_ref()))
    }

    /// How many errors.
    pub fn error_count(&self) -> usize {
        self.items.iter().filter(|d| is_error(d.as_ref())).count()
    }

    /// How many warnings.
    pub fn warning_count(&self) -> usize {
        self.items.len() - self.error_count()
    }

    /// The diagnostics in the order found.
    pub fn iter(&self) -> impl Iterator<Item = &BoxedDiagnostic> {
        self.items.iter()
    }

    /// Drops the warnings the source acknowledges: a comment `# scpc: allow(NAME)` on the line
    /// a warning points at, or alone on the line above, where NAME is the last part of the
    /// warning's code (`attack_surface` for `scpc::lint::attack_surface`). Errors stay.
    pub fn drop_acknowledged(&mut self, map: &crate::source::SourceMap) {
        self.items.retain(|d| {
            if is_error(d.as_ref()) {
                return true;
            }
            let (Some(code), Some(span)) = (d.code().map(|c| c.to_string()), primary_span(d.as_ref())) else { return true };
            let name = code.rsplit("::").next().unwrap_or(&code).to_string();
            let Some((_, file)) = map.file_at(span.offset() as u32) else { return true };
            let local = (span.offset() as u32 - file.base) as usize;
            let text = &file.text;
            let start = text.get(..local).and_then(|b| b.rfind('\n')).map_or(0, |i| i + 1);
            let end = text.get(local..).and_then(|a| a.find('\n')).map_or(text.len(), |i| local + i);
            let line = text.get(start..end).unwrap_or("");
            let above = text.get(..start.saturating_sub(1)).map(|b| &b[b.rfind('\n').map_or(0, |i| i + 1)..]).unwrap_or("");
            let pragma = format!("scpc: allow({name})");
            let acknowledged = line.contains(&pragma) || (above.trim_start().starts_with('#') && above.contains(&pragma));
            !acknowledged
        });
    }

    /// Takes them all out, sorted by position (file order, then offset), errors before warnings
    /// at the same place.
    pub fn into_sorted(self) -> Vec<BoxedDiagnostic> {
        let mut items = self.items;
        items.sort_by_key(|d| (primary_span(d.as_ref()).map_or(usize::MAX, |s| s.offset()), !is_error(d.as_ref())));
        items
    }
}

/// Syntax errors: what the grammar or the literal rules refuse.
#[derive(Debug, Error, Diagnostic)]
pub enum SyntaxError {
    /// The parser met a token it cannot take here.
    #[error("syntax error: {message}")]
    #[diagnostic(code(scpc::syntax::unexpected))]
    Unexpected {
        /// "expected …".
        message: String,
        /// "found …".
        label: String,
        /// Where.
        #[label("{label}")]
        span: SourceSpan,
        /// What to write instead.
        #[help]
        help: String,
    },
    /// `0755`: octal in C, decimal in Rust.
    #[error("ambiguous number `{text}`")]
    #[diagnostic(
        code(scpc::syntax::ambiguous_octal),
        help("write `0o{digits}` for octal or `{digits}` for decimal: C reads a leading 0 as octal, Rust does not")
    )]
    AmbiguousOctal {
        /// The literal.
        text: String,
        /// Its digits without leading zeros.
        digits: String,
        /// Where.
        #[label("leading zero")]
        span: SourceSpan,
    },
    /// More than 64 bits.
    #[error("number `{text}` does not fit in 64 bits")]
    #[diagnostic(
        code(scpc::syntax::number_too_large),
        help("seccomp arguments are 64-bit registers; the largest value is 0xffff_ffff_ffff_ffff")
    )]
    NumberTooLarge {
        /// The literal.
        text: String,
        /// Where.
        #[label("too large")]
        span: SourceSpan,
    },
    /// A version number past u16.
    #[error("kernel version `{text}` is out of range")]
    #[diagnostic(code(scpc::syntax::bad_version), help("write a real kernel version, for example `kernel >= 5.10`"))]
    BadVersion {
        /// The text.
        text: String,
        /// Where.
        #[label("not a kernel version")]
        span: SourceSpan,
    },
    /// Parentheses, braces or unary operators nested too deep.
    #[error("nesting deeper than {max} levels")]
    #[diagnostic(code(scpc::syntax::too_deep), help("split the condition into several rules, or name parts of it with `const`"))]
    NestingTooDeep {
        /// The cap.
        max: usize,
        /// Where the cap was passed.
        #[label("too deep here")]
        span: SourceSpan,
    },
    /// An expression or condition with more operators along one path than the cap.
    #[error("expression deeper than {max} operators")]
    #[diagnostic(
        code(scpc::syntax::too_long),
        help("write a long `||` of equalities as a set (`arg in {{A, B, C}}`), or name parts of it with `const`")
    )]
    TooLong {
        /// The cap.
        max: usize,
        /// Where the expression starts.
        #[label("too deep from here")]
        span: SourceSpan,
    },
}

/// Errors of include resolution.
#[derive(Debug, Error, Diagnostic)]
pub enum IncludeError {
    /// The file cannot be found or read.
    #[error("cannot include `{path}`: {reason}")]
    #[diagnostic(code(scpc::include::not_found))]
    NotFound {
        /// The path as written.
        path: String,
        /// Why.
        reason: String,
        /// The string.
        #[label("included here")]
        span: SourceSpan,
        /// Where paths are looked up.
        #[help]
        help: String,
    },
    /// The file lies outside the directories includes may come from.
    #[error("cannot include `{path}`: {reason}")]
    #[diagnostic(code(scpc::include::outside))]
    Outside {
        /// The path as written.
        path: String,
        /// Where it resolved to.
        reason: String,
        /// The string.
        #[label("outside the allowed directories")]
        span: SourceSpan,
        /// The rule.
        #[help]
        help: String,
    },
    /// Not a regular file, or too large.
    #[error("cannot include `{path}`: {reason}")]
    #[diagnostic(
        code(scpc::include::not_a_file),
        help("an include names a policy file: a regular file of at most 4 MiB (a unit holds at most 64 MiB)")
    )]
    NotAFile {
        /// The path as written.
        path: String,
        /// Why.
        reason: String,
        /// The string.
        #[label("not a policy file")]
        span: SourceSpan,
    },
    /// A file includes itself, directly or through others.
    #[error("include cycle: {cycle}")]
    #[diagnostic(code(scpc::include::cycle), help("move what both files need into a third file that both include"))]
    Cycle {
        /// `a.scp -> b.scp -> a.scp`.
        cycle: String,
        /// The include that closes the cycle.
        #[label("this include closes the cycle")]
        span: SourceSpan,
    },
    /// Includes nested past the cap.
    #[error("includes nested deeper than {max} files")]
    #[diagnostic(code(scpc::include::too_deep), help("flatten the include chain"))]
    TooDeep {
        /// The cap.
        max: usize,
        /// The include past it.
        #[label("too deep")]
        span: SourceSpan,
    },
}

/// A diagnostic of a later stage that has no place of its own, pinned to one in the source (a
/// filter too large to load is reported at the name of the policy it was built from), so that
/// it prints like every other diagnostic, in JSON too.
#[derive(Debug)]
pub struct Located {
    /// The diagnostic.
    pub inner: BoxedDiagnostic,
    /// Where it is pinned.
    pub span: SourceSpan,
    /// What the place is.
    pub label: String,
}

impl std::fmt::Display for Located {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(&self.inner, f)
    }
}

impl std::error::Error for Located {}

impl Diagnostic for Located {
    fn code<'a>(&'a self) -> Option<Box<dyn std::fmt::Display + 'a>> {
        self.inner.code()
    }
    fn severity(&self) -> Option<Severity> {
        self.inner.severity()
    }
    fn help<'a>(&'a self) -> Option<Box<dyn std::fmt::Display + 'a>> {
        self.inner.help()
    }
    fn labels(&self) -> Option<Box<dyn Iterator<Item = miette::LabeledSpan> + '_>> {
        Some(Box::new(std::iter::once(miette::LabeledSpan::new_primary_with_span(Some(self.label.clone()), self.span))))
    }
}
