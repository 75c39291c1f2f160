//! Printing diagnostics: miette's graphical report for people, one JSON object per line for
//! tools (`--message-format json`). Both attach the [`SourceMap`] once, here.

use std::fmt;

use miette::{Diagnostic, GraphicalReportHandler, GraphicalTheme, LabeledSpan, SourceCode};
use scpc_lang::diag::{is_error, primary_span, BoxedDiagnostic};
use scpc_lang::source::SourceMap;
use serde_json::json;

/// A diagnostic with the source map attached, for miette's handlers.
struct WithSource<'a> {
    inner: &'a dyn Diagnostic,
    map: &'a SourceMap,
}

impl fmt::Debug for WithSource<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.inner, f)
    }
}
impl fmt::Display for WithSource<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self.inner, f)
    }
}
impl std::error::Error for WithSource<'_> {}
impl Diagnostic for WithSource<'_> {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.inner.code()
    }
    fn severity(&self) -> Option<miette::Severity> {
        self.inner.severity()
    }
    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.inner.help()
    }
    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        self.inner.labels()
    }
    fn source_code(&self) -> Option<&dyn SourceCode> {
        Some(self.map)
    }
}

/// Renders diagnostics as miette's graphical report, `width` columns wide, with or without
/// colors.
pub fn render_human(diags: &[BoxedDiagnostic], map: &SourceMap, color: bool, width: usize) -> String {
    let theme = if color { GraphicalTheme::unicode() } else { GraphicalTheme::unicode_nocolor() };
    let handler = GraphicalReportHandler::new_themed(theme).with_width(width).with_links(false);
    let mut out = String::new();
    for d in diags {
        let with = WithSource { inner: d.as_ref(), map };
        if handler.render_report(&mut out, &with).is_err() {
            out.push_str(&format!("{d}\n"));
        }
        out.push('\n');
    }
    out
}

/// One JSON object per diagnostic: severity, code, message, file, line, column (1-based,
/// columns in characters), the end of the primary span, every label, and the help.
pub fn render_json(diags: &[BoxedDiagnostic], map: &SourceMap) -> String {
    let mut out = String::new();
    for d in diags {
        let at = |offset: usize| map.locate(offset as u32).map(|(file, lc)| (file.to_string(), lc.line, lc.column));
        let (file, line, column) = primary_span(d.as_ref()).and_then(|s| at(s.offset())).unwrap_or_default();
        let end = primary_span(d.as_ref()).and_then(|s| at(s.offset() + s.len()));
        let labels: Vec<_> = d
            .labels()
            .into_iter()
            .flatten()
            .map(|l| {
                let (file, line, column) = at(l.offset()).unwrap_or_default();
                json!({ "message": l.label(), "file": file, "line": line, "column": column, "primary": l.primary() })
            })
            .collect();
        let obj = json!({
            "severity": if is_error(d.as_ref()) { "error" } else { "warning" },
            "code": d.code().map(|c| c.to_string()),
            "message": d.to_string(),
            "file": file,
            "line": line,
            "column": column,
            "end_line": end.as_ref().map(|e| e.1),
            "end_column": end.as_ref().map(|e| e.2),
            "labels": labels,
            "help": d.help().map(|h| h.to_string()),
        });
        out.push_str(&obj.to_string());
        out.push('\n');
    }
    out
}
