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
/// columns in characters), the end of the primary span, every label (with its start, its end
/// and whether it is the primary one: a sole label is), and the help.
pub fn render_json(diags: &[BoxedDiagnostic], map: &SourceMap) -> String {
    let mut out = String::new();
    for d in diags {
        let at = |offset: usize| map.locate(offset as u32).map(|(file, lc)| (file.to_string(), lc.line, lc.column));
        let (file, line, column) = primary_span(d.as_ref()).and_then(|s| at(s.offset())).unwrap_or_default();
        let end = primary_span(d.as_ref()).and_then(|s| at(s.offset() + s.len()));
        let all: Vec<LabeledSpan> = d.labels().into_iter().flatten().collect();
        let sole = all.len() == 1;
        let labels: Vec<_> = all
            .iter()
            .map(|l| {
                let (file, line, column) = at(l.offset()).unwrap_or_default();
                let end = at(l.offset() + l.len());
                json!({
                    "message": l.label(),
                    "file": file,
                    "line": line,
                    "column": column,
                    "end_line": end.as_ref().map(|e| e.1),
                    "end_column": end.as_ref().map(|e| e.2),
                    "primary": l.primary() || sole,
                })
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

/// Whether to print colors: `--color always` or `never` decide; with `auto`, a
/// `CLICOLOR_FORCE` other than `0` forces them, a `NO_COLOR` that is set and not empty turns
/// them off (<https://no-color.org>), and otherwise a terminal gets them.
pub fn use_color(choice: ColorChoice, is_terminal: bool, no_color: Option<&str>, clicolor_force: Option<&str>) -> bool {
    match choice {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto if clicolor_force.is_some_and(|v| !v.is_empty() && v != "0") => true,
        ColorChoice::Auto if no_color.is_some_and(|v| !v.is_empty()) => false,
        ColorChoice::Auto => is_terminal,
    }
}

/// `--color`.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub enum ColorChoice {
    /// Colors on a terminal, unless the environment says otherwise.
    #[default]
    Auto,
    /// Always.
    Always,
    /// Never.
    Never,
}

#[cfg(test)]
mod color_tests {
    use super::*;

    #[test]
    fn the_environment_decides_auto_only() {
        assert!(use_color(ColorChoice::Always, false, Some("1"), None));
        assert!(!use_color(ColorChoice::Never, true, None, Some("1")));
        assert!(use_color(ColorChoice::Auto, true, None, None));
        assert!(!use_color(ColorChoice::Auto, false, None, None));
        assert!(!use_color(ColorChoice::Auto, true, Some("1"), None), "NO_COLOR");
        assert!(use_color(ColorChoice::Auto, true, Some(""), None), "an empty NO_COLOR is unset");
        assert!(use_color(ColorChoice::Auto, false, Some("1"), Some("1")), "CLICOLOR_FORCE wins");
        assert!(!use_color(ColorChoice::Auto, false, None, Some("0")));
    }
}
