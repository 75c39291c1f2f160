//! Text to syntax tree. The pest parse tree never leaves this module: [`parse_file`] turns it at
//! once into the owned, spanned [`crate::ast`].

mod build;
mod names;

use pest::Parser;

use crate::ast;
use crate::diag::{Diagnostics, SyntaxError};
use crate::source::{FileId, SourceMap, Span};

#[allow(missing_docs)]
mod grammar {
    /// The pest parser generated from `scp.pest`; [`Rule`] names its rules.
    #[derive(pest_derive::Parser)]
    #[grammar = "syntax/scp.pest"]
    pub struct ScpParser;
}
pub(crate) use grammar::{Rule, ScpParser};

/// How deep parentheses, braces and unary operators may nest before the file is refused (the
/// parser and the tree builder recurse; kafel has the same cap).
pub const MAX_NESTING: usize = 100;

/// How many operators an expression or a condition may hold along its longest path (each `|`
/// of a chain `a | b | c` counts, since the tree built from it is that deep). Every pass over
/// a condition (checking, compiling, the reference interpreter, the formatter) recurses over
/// this tree, so its depth is capped: chains longer than this are better written as a set
/// (`in {...}`) or named in parts with `const`.
pub const MAX_DEPTH: usize = 256;

/// Parses one file of `map`. A syntax error is pushed to `diags` and gives `None`: pest has no
/// error recovery, so a file yields at most one syntax error.
pub fn parse_file(map: &SourceMap, file: FileId, diags: &mut Diagnostics) -> Option<ast::File> {
    let source = map.file(file);
    let base = source.base;
    let text: &str = &source.text;
    if let Some(offset) = nesting_too_deep(text) {
        let at = base + offset as u32;
        diags.push(SyntaxError::NestingTooDeep { span: Span::new(at, at + 1).into(), max: MAX_NESTING });
        return None;
    }
    match ScpParser::parse(Rule::file, text) {
        Ok(mut pairs) => {
            let file_pair = pairs.next().expect("grammar: parse(file) yields the file pair");
            let comments = comments(text, base);
            let comment_ends = comments.iter().map(|c| ((c.span.hi - base) as usize, (c.span.lo - base) as usize)).collect();
            let mut builder = build::Builder { base, text, comment_ends, diags, errors: 0 };
            let items = builder.file(file_pair);
            if builder.errors > 0 {
                return None;
            }
            Some(ast::File { file, items, comments, span: Span::new(base, base + text.len() as u32) })
        }
        Err(err) => {
            diags.push(names::syntax_error(&err, text, base));
            None
        }
    }
}

/// Offset of the first place where nesting passes [`MAX_NESTING`], outside comments and strings.
fn nesting_too_deep(text: &str) -> Option<usize> {
    let (mut depth, mut unary_run) = (0usize, 0usize);
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match c {
            '#' => {
                // a comment is not a token: it neither ends nor continues a run of unary operators
                while chars.next_if(|&(_, c)| c != '\n').is_some() {}
                continue;
            }
            '"' => {
                while let Some((_, c)) = chars.next() {
                    match c {
                        '\\' => {
                            chars.next();
                        }
                        '"' | '\n' => break,
                        _ => {}
                    }
                }
            }
            '(' | '{' => depth += 1,
            ')' | '}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        if matches!(c, '!' | '~' | '-') {
            unary_run += 1;
        } else if !c.is_whitespace() {
            unary_run = 0;
        }
        if depth > MAX_NESTING || unary_run > MAX_NESTING {
            return Some(i);
        }
    }
    None
}

/// The `#` comments of a file, outside strings.
fn comments(text: &str, base: u32) -> Vec<ast::Comment> {
    let mut out = Vec::new();
    let mut in_string = false;
    let mut chars = text.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => in_string = !in_string,
            '\\' if in_string => {
                chars.next();
            }
            '\n' => in_string = false,
            '#' if !in_string => {
                let end = text[i..].find('\n').map_or(text.len(), |n| i + n);
                let body = text[i + 1..end].trim_end();
                out.push(ast::Comment { text: body.to_string(), span: Span::new(base + i as u32, base + (i + 1 + body.len()) as u32) });
                for _ in text[i + 1..end].chars() {
                    chars.next();
                }
            }
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests;
