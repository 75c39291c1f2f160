//! Source files and spans.
//!
//! Every file loaded for one run lives in one [`SourceMap`] and gets a base offset in a single
//! global offset space, so a [`Span`] alone says which file it points into and one
//! [`miette::SourceCode`] implementation serves diagnostics of every file.

use std::sync::Arc;

use miette::{MietteError, MietteSpanContents, SourceCode, SourceSpan, SpanContents};

/// A byte range in the [`SourceMap`]'s global offset space.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Span {
    /// First byte.
    pub lo: u32,
    /// One past the last byte.
    pub hi: u32,
}

impl Span {
    /// The span from `lo` to `hi`.
    pub fn new(lo: u32, hi: u32) -> Span {
        Span { lo, hi }
    }
    /// The smallest span that covers both.
    pub fn to(self, other: Span) -> Span {
        Span::new(self.lo.min(other.lo), self.hi.max(other.hi))
    }
    /// Whether `other` lies inside this span.
    pub fn contains(self, other: Span) -> bool {
        self.lo <= other.lo && other.hi <= self.hi
    }
}

impl From<Span> for SourceSpan {
    fn from(span: Span) -> SourceSpan {
        SourceSpan::new((span.lo as usize).into(), (span.hi - span.lo) as usize)
    }
}

/// Index of a file in a [`SourceMap`].
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FileId(u32);

/// One loaded file.
#[derive(Debug)]
pub struct SourceFile {
    /// The name diagnostics print: the path as given, or `std/NAME` for the bundled library.
    pub name: String,
    /// Offset of the file's first byte in the global space.
    pub base: u32,
    /// The text.
    pub text: Arc<str>,
}

/// A line and column, both counted from 1; the column counts characters.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct LineCol {
    /// Line, from 1.
    pub line: usize,
    /// Column in characters, from 1.
    pub column: usize,
}

/// All files of a run.
#[derive(Debug, Default, Clone)]
pub struct SourceMap {
    files: Vec<Arc<SourceFile>>,
}

impl SourceMap {
    /// An empty map.
    pub fn new() -> SourceMap {
        SourceMap::default()
    }

    /// Adds a file and returns its id. Each file is followed by one byte of padding, so that a
    /// span at the very end of a file (an unexpected end of input) still belongs to it.
    pub fn add(&mut self, name: impl Into<String>, text: impl Into<Arc<str>>) -> FileId {
        let base = self.files.last().map_or(0, |f| f.base + f.text.len() as u32 + 1);
        let id = FileId(self.files.len() as u32);
        self.files.push(Arc::new(SourceFile { name: name.into(), base, text: text.into() }));
        id
    }

    /// The file with this id.
    pub fn file(&self, id: FileId) -> &SourceFile {
        &self.files[id.0 as usize]
    }

    /// The file a global offset falls in.
    pub fn file_at(&self, offset: u32) -> Option<(FileId, &SourceFile)> {
        let idx = self.files.partition_point(|f| f.base <= offset).checked_sub(1)?;
        let file = &self.files[idx];
        (offset <= file.base + file.text.len() as u32).then_some((FileId(idx as u32), &**file))
    }

    /// The text a span covers (empty if the span is not in one file).
    pub fn text(&self, span: Span) -> &str {
        self.file_at(span.lo).and_then(|(_, f)| f.text.get((span.lo - f.base) as usize..(span.hi - f.base) as usize)).unwrap_or("")
    }

    /// File name, line and column of the start of a span.
    pub fn locate(&self, offset: u32) -> Option<(&str, LineCol)> {
        let (_, file) = self.file_at(offset)?;
        let local = ((offset - file.base) as usize).min(file.text.len());
        let before = file.text.get(..local)?;
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = before[line_start..].chars().count() + 1;
        Some((&file.name, LineCol { line, column }))
    }
}

impl SourceCode for SourceMap {
    fn read_span<'a>(
        &'a self,
        span: &SourceSpan,
        context_lines_before: usize,
        context_lines_after: usize,
    ) -> Result<Box<dyn SpanContents<'a> + 'a>, MietteError> {
        let offset = span.offset() as u32;
        let (_, file) = self.file_at(offset).ok_or(MietteError::OutOfBounds)?;
        let local_len = span.len().min(file.text.len().saturating_sub((offset - file.base) as usize));
        let local = SourceSpan::new(((offset - file.base) as usize).into(), local_len);
        let inner = file.text.as_ref().read_span(&local, context_lines_before, context_lines_after)?;
        let global = SourceSpan::new((inner.span().offset() + file.base as usize).into(), inner.span().len());
        Ok(Box::new(MietteSpanContents::new_named(
            file.name.clone(),
            inner.data(),
            global,
            inner.line(),
            inner.column(),
            inner.line_count(),
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locate_counts_lines_and_columns_per_file() {
        let mut map = SourceMap::new();
        map.add("a.scp", "ab\ncd");
        let b = map.add("b.scp", "x\n  yz");
        let base = map.file(b).base;
        assert_eq!(map.locate(4).map(|(n, lc)| (n.to_string(), lc.line, lc.column)), Some(("a.scp".into(), 2, 2)));
        assert_eq!(map.locate(base + 4).map(|(n, lc)| (n.to_string(), lc.line, lc.column)), Some(("b.scp".into(), 2, 3)));
        assert_eq!(map.text(Span::new(base + 4, base + 6)), "yz");
    }
}
