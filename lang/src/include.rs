//! Include resolution: from a root file, parse it and every file it includes, transitively,
//! each once, into one [`Unit`]. Paths are relative to the including file; `std/...` names the
//! bundled stdlib-policies. A cycle is an error that names it.
//!
//! Every file of a unit shares one scope: a policy sees the consts, groups and policies of
//! every file the unit holds.

use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};

use crate::ast;
use crate::diag::{Diagnostics, IncludeError};
use crate::source::{SourceMap, Span};
use crate::syntax::parse_file;

/// How deep includes may nest.
pub const MAX_INCLUDE_DEPTH: usize = 32;

/// A file a [`Loader`] found.
#[derive(Clone, Debug)]
pub struct Loaded {
    /// Identity of the file (a canonical path, or `std/NAME`): the same file included twice is
    /// loaded once.
    pub key: String,
    /// What diagnostics call it.
    pub name: String,
    /// The text.
    pub text: String,
}

/// Where included files come from.
pub trait Loader {
    /// Finds `path` as written in the file whose key is `from` (`None` for a root file given
    /// on the command line). The error says why, in a few words.
    fn load(&self, path: &str, from: Option<&Loaded>) -> Result<Loaded, String>;
}

/// Files on disk, with `std/...` answered from the bundled library.
pub struct FsLoader {
    /// Looks a stdlib file up by its path below `std/`.
    pub stdlib: fn(&str) -> Option<&'static str>,
}

fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

impl Loader for FsLoader {
    fn load(&self, path: &str, from: Option<&Loaded>) -> Result<Loaded, String> {
        let std_path = match from {
            _ if path.starts_with("std/") => Some(normalize(Path::new(path))),
            Some(f) if f.key.starts_with("std/") => Some(normalize(&Path::new(&f.key).parent().unwrap_or(Path::new("std")).join(path))),
            _ => None,
        };
        if let Some(p) = std_path {
            let key = p.to_string_lossy().replace('\\', "/");
            let rest = key.strip_prefix("std/").ok_or("it leaves the bundled std/ library")?;
            let text = (self.stdlib)(rest).ok_or("the bundled library has no such file")?;
            return Ok(Loaded { name: key.clone(), key, text: text.to_string() });
        }
        let name = match from {
            Some(f) => Path::new(&f.name).parent().unwrap_or(Path::new("")).join(path),
            None => PathBuf::from(path),
        };
        let on_disk = match from {
            Some(f) => Path::new(&f.key).parent().unwrap_or(Path::new("/")).join(path),
            None => PathBuf::from(path),
        };
        let key = std::fs::canonicalize(&on_disk).map_err(|e| io_reason(&e))?;
        let text = std::fs::read_to_string(&key).map_err(|e| io_reason(&e))?;
        Ok(Loaded { key: key.to_string_lossy().into_owned(), name: normalize(&name).to_string_lossy().into_owned(), text })
    }
}

fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file".into(),
        std::io::ErrorKind::InvalidData => "it is not UTF-8 text".into(),
        _ => e.to_string(),
    }
}

/// Files held in memory, by name; for tests and fuzzing.
#[derive(Default)]
pub struct MemLoader {
    /// name -> text.
    pub files: HashMap<String, String>,
}

impl Loader for MemLoader {
    fn load(&self, path: &str, from: Option<&Loaded>) -> Result<Loaded, String> {
        let full = match from {
            Some(f) => normalize(&Path::new(&f.key).parent().unwrap_or(Path::new("")).join(path)),
            None => PathBuf::from(path),
        };
        let key = full.to_string_lossy().into_owned();
        let text = self.files.get(&key).ok_or("no such file")?;
        Ok(Loaded { key: key.clone(), name: key, text: text.clone() })
    }
}

/// A root file and everything it includes.
#[derive(Debug)]
pub struct Unit {
    /// The files, root first, then includes in the order first met.
    pub files: Vec<ast::File>,
}

/// Loads and parses `root` and its includes into `map`, reporting problems to `diags`. Returns
/// `Err` with a reason when the root itself cannot be read (an I/O failure, not bad input).
/// Files that fail to parse are left out of the unit; their errors are in `diags`.
pub fn load_unit(root: &str, loader: &dyn Loader, map: &mut SourceMap, diags: &mut Diagnostics) -> Result<Unit, String> {
    let loaded = loader.load(root, None)?;
    let mut state = State { loader, map, diags, done: HashMap::new(), stack: Vec::new(), files: Vec::new() };
    state.visit(loaded);
    Ok(Unit { files: state.files })
}

struct State<'a> {
    loader: &'a dyn Loader,
    map: &'a mut SourceMap,
    diags: &'a mut Diagnostics,
    done: HashMap<String, ()>,
    stack: Vec<Loaded>,
    files: Vec<ast::File>,
}

impl State<'_> {
    fn visit(&mut self, file: Loaded) {
        self.done.insert(file.key.clone(), ());
        let id = self.map.add(file.name.clone(), file.text.as_str());
        let Some(parsed) = parse_file(self.map, id, self.diags) else { return };
        let includes: Vec<(String, Span)> = parsed
            .items
            .iter()
            .filter_map(|i| match i {
                ast::Item::Include(inc) => Some((inc.path.clone(), inc.path_span)),
                _ => None,
            })
            .collect();
        self.files.push(parsed);
        self.stack.push(file);
        for (path, span) in includes {
            self.include(&path, span);
        }
        self.stack.pop();
    }

    fn include(&mut self, path: &str, span: Span) {
        let from = self.stack.last();
        let loaded = match self.loader.load(path, from) {
            Ok(l) => l,
            Err(reason) => {
                let help = if path.starts_with("std/") {
                    "`std/...` names a file of the bundled stdlib-policies, for example `std/groups.scp`".to_string()
                } else {
                    "paths are relative to the including file; `std/...` names the bundled library".to_string()
                };
                self.diags.push(IncludeError::NotFound { path: path.to_string(), reason, span: span.into(), help });
                return;
            }
        };
        if let Some(pos) = self.stack.iter().position(|f| f.key == loaded.key) {
            let mut names: Vec<&str> = self.stack[pos..].iter().map(|f| f.name.as_str()).collect();
            names.push(&loaded.name);
            self.diags.push(IncludeError::Cycle { cycle: names.join(" -> "), span: span.into() });
            return;
        }
        if self.done.contains_key(&loaded.key) {
            return;
        }
        if self.stack.len() >= MAX_INCLUDE_DEPTH {
            self.diags.push(IncludeError::TooDeep { max: MAX_INCLUDE_DEPTH, span: span.into() });
            return;
        }
        self.visit(loaded);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mem(files: &[(&str, &str)]) -> MemLoader {
        MemLoader { files: files.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect() }
    }

    #[test]
    fn includes_resolve_relative_to_the_including_file_once_each() {
        let loader = mem(&[
            ("a/root.scp", "include \"lib/x.scp\"\ninclude \"lib/y.scp\""),
            ("a/lib/x.scp", "include \"y.scp\"\nconst X = 1"),
            ("a/lib/y.scp", "const Y = 2"),
        ]);
        let (mut map, mut diags) = (SourceMap::new(), Diagnostics::new());
        let unit = load_unit("a/root.scp", &loader, &mut map, &mut diags).expect("root loads");
        assert!(!diags.has_errors(), "{diags:?}");
        assert_eq!(unit.files.len(), 3);
    }

    #[test]
    fn a_cycle_is_named() {
        let loader = mem(&[("a.scp", "include \"b.scp\""), ("b.scp", "include \"a.scp\"")]);
        let (mut map, mut diags) = (SourceMap::new(), Diagnostics::new());
        load_unit("a.scp", &loader, &mut map, &mut diags).expect("root loads");
        let msgs: Vec<String> = diags.iter().map(|d| d.to_string()).collect();
        assert_eq!(msgs, ["include cycle: a.scp -> b.scp -> a.scp"]);
    }

    #[test]
    fn a_missing_include_is_located() {
        let loader = mem(&[("a.scp", "const A = 1\ninclude \"nope.scp\"")]);
        let (mut map, mut diags) = (SourceMap::new(), Diagnostics::new());
        load_unit("a.scp", &loader, &mut map, &mut diags).expect("root loads");
        let d = diags.iter().next().expect("one diagnostic");
        let span = crate::diag::primary_span(d.as_ref()).expect("located");
        assert_eq!(map.locate(span.offset() as u32).map(|(_, lc)| (lc.line, lc.column)), Some((2, 9)));
    }
}
