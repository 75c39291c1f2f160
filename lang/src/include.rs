//! Include resolution: from a root file, parse it and every file it includes, transitively,
//! each once, into one [`Unit`]. Paths are relative to the including file; `std/...` names the
//! bundled stdlib-policies. A cycle is an error that names it.
//!
//! What may be included ([`FsLoader`]): only regular files (never a FIFO, a device or a
//! directory), of at most [`MAX_FILE_BYTES`] each and [`MAX_UNIT_BYTES`] together, that lie —
//! symbolic links resolved — below the including file's directory, below the root file's
//! directory, or below a directory given with `-I`; and the files of the bundled library.
//! A relative path is looked up beside the including file first, then in each `-I`
//! directory in order. Anything else is refused before it is opened, so that a policy cannot
//! make scpc block on a FIFO, read `/dev/zero` until memory runs out, or print the lines of
//! `/etc/passwd` in a diagnostic.
//!
//! Every file of a unit shares one scope: a policy sees the consts, groups and policies of
//! every file the unit holds.

use std::collections::HashMap;
use std::fmt;
use std::io::Read;
use std::path::{Component, Path, PathBuf};

use crate::ast;
use crate::diag::{Diagnostics, IncludeError};
use crate::source::{SourceMap, Span};
use crate::syntax::parse_file;

/// How deep includes may nest.
pub const MAX_INCLUDE_DEPTH: usize = 32;

/// The largest file that may be loaded (root or included), in bytes.
pub const MAX_FILE_BYTES: u64 = 4 << 20;

/// The most text a unit (a root file and everything it includes) may hold, in bytes.
pub const MAX_UNIT_BYTES: usize = 64 << 20;

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
    /// The root file's directory (canonical), below which every file of the unit may include;
    /// `None` for files that do not come from disk.
    pub tree: Option<PathBuf>,
}

/// Why a file cannot be loaded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LoadError {
    /// It does not exist or cannot be read (the reason, in a few words).
    Unreadable(String),
    /// It lies outside every directory includes may come from.
    Outside {
        /// Where it resolved to.
        resolved: String,
    },
    /// It is not a regular file (a FIFO, a device, a directory...).
    NotRegular,
    /// It is larger than [`MAX_FILE_BYTES`].
    TooLarge,
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadError::Unreadable(reason) => f.write_str(reason),
            LoadError::Outside { resolved } => {
                write!(f, "`{resolved}` is outside the including file's directory, the root file's and every -I directory")
            }
            LoadError::NotRegular => f.write_str("not a regular file"),
            LoadError::TooLarge => write!(f, "larger than {} MiB", MAX_FILE_BYTES >> 20),
        }
    }
}

/// Where included files come from.
pub trait Loader {
    /// Finds `path` as written in the file whose key is `from` (`None` for a root file given
    /// on the command line).
    fn load(&self, path: &str, from: Option<&Loaded>) -> Result<Loaded, LoadError>;
}

/// Files on disk, with `std/...` answered from the bundled library.
pub struct FsLoader {
    /// Looks a stdlib file up by its path below `std/`.
    pub stdlib: fn(&str) -> Option<&'static str>,
    /// Directories given with `-I`: searched after the including file's directory, and
    /// allowed to be included from.
    pub include_dirs: Vec<PathBuf>,
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
    fn load(&self, path: &str, from: Option<&Loaded>) -> Result<Loaded, LoadError> {
        let std_path = match from {
            _ if path.starts_with("std/") => Some(normalize(Path::new(path))),
            Some(f) if f.key.starts_with("std/") => Some(normalize(&Path::new(&f.key).parent().unwrap_or(Path::new("std")).join(path))),
            _ => None,
        };
        if let Some(p) = std_path {
            let key = p.to_string_lossy().replace('\\', "/");
            let rest = key.strip_prefix("std/").ok_or(LoadError::Unreadable("it leaves the bundled std/ library".into()))?;
            let text = (self.stdlib)(rest).ok_or(LoadError::Unreadable("the bundled library has no such file".into()))?;
            return Ok(Loaded { name: key.clone(), key, text: text.to_string(), tree: None });
        }
        let Some(from) = from else {
            // the root file, as given on the command line
            let key = std::fs::canonicalize(path).map_err(|e| io_reason(&e))?;
            let text = read_regular(&key)?;
            let tree = key.parent().map(Path::to_path_buf);
            return Ok(Loaded { key: key.to_string_lossy().into_owned(), name: path.to_string(), text, tree });
        };
        // (a file held in memory is named by a relative path: its directory is the working one)
        let parent = Path::new(&from.key).parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let from_dir = std::fs::canonicalize(parent).map_err(|e| io_reason(&e))?;
        let mut allowed: Vec<PathBuf> = vec![from_dir.clone()];
        allowed.extend(from.tree.clone());
        allowed.extend(self.include_dirs.iter().filter_map(|d| std::fs::canonicalize(d).ok()));
        let mut candidates = vec![(from_dir.join(path), Path::new(&from.name).parent().unwrap_or(Path::new("")).join(path))];
        if Path::new(path).is_relative() {
            candidates.extend(self.include_dirs.iter().map(|d| (d.join(path), d.join(path))));
        }
        let mut refusal = None;
        for (on_disk, name) in candidates {
            let key = match std::fs::canonicalize(&on_disk) {
                Ok(k) => k,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io_reason(&e)),
            };
            if !allowed.iter().any(|dir| key.starts_with(dir)) {
                refusal.get_or_insert(LoadError::Outside { resolved: key.to_string_lossy().into_owned() });
                continue;
            }
            let text = read_regular(&key)?;
            return Ok(Loaded {
                key: key.to_string_lossy().into_owned(),
                name: normalize(&name).to_string_lossy().into_owned(),
                text,
                tree: from.tree.clone(),
            });
        }
        Err(refusal.unwrap_or(LoadError::Unreadable("no such file".into())))
    }
}

/// Reads a regular file of at most [`MAX_FILE_BYTES`]. It is opened without blocking (a FIFO
/// would wait for a writer) and checked on the open descriptor, so that a file swapped after
/// the path was resolved is judged as what is actually read.
fn read_regular(path: &Path) -> Result<String, LoadError> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open(path).map_err(|e| io_reason(&e))?;
    let meta = file.metadata().map_err(|e| io_reason(&e))?;
    if !meta.is_file() {
        return Err(LoadError::NotRegular);
    }
    if meta.len() > MAX_FILE_BYTES {
        return Err(LoadError::TooLarge);
    }
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes).map_err(|e| io_reason(&e))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(LoadError::TooLarge);
    }
    String::from_utf8(bytes).map_err(|_| LoadError::Unreadable("it is not UTF-8 text".into()))
}

fn io_reason(e: &std::io::Error) -> LoadError {
    LoadError::Unreadable(match e.kind() {
        std::io::ErrorKind::NotFound => "no such file".into(),
        std::io::ErrorKind::InvalidData => "it is not UTF-8 text".into(),
        _ => e.to_string(),
    })
}

/// Files held in memory, by name; for tests and fuzzing.
#[derive(Default)]
pub struct MemLoader {
    /// name -> text.
    pub files: HashMap<String, String>,
}

impl Loader for MemLoader {
    fn load(&self, path: &str, from: Option<&Loaded>) -> Result<Loaded, LoadError> {
        let full = match from {
            Some(f) => normalize(&Path::new(&f.key).parent().unwrap_or(Path::new("")).join(path)),
            None => PathBuf::from(path),
        };
        let key = full.to_string_lossy().into_owned();
        let text = self.files.get(&key).ok_or(LoadError::Unreadable("no such file".into()))?;
        Ok(Loaded { key: key.clone(), name: key, text: text.clone(), tree: None })
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
pub fn load_unit(root: &str, loader: &dyn Loader, map: &mut SourceMap, diags: &mut Diagnostics) -> Result<Unit, LoadError> {
    let loaded = loader.load(root, None)?;
    let mut state = State { loader, map, diags, done: HashMap::new(), stack: Vec::new(), files: Vec::new(), bytes: loaded.text.len() };
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
    /// Text loaded so far.
    bytes: usize,
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
            Err(e) => {
                let reason = e.to_string();
                let span = span.into();
                let error = match e {
                    LoadError::Outside { .. } => IncludeError::Outside {
                        path: path.to_string(),
                        reason,
                        span,
                        help: "include files below the including file's directory or the root file's, or give their directory with -I DIR"
                            .into(),
                    },
                    LoadError::NotRegular | LoadError::TooLarge => IncludeError::NotAFile { path: path.to_string(), reason, span },
                    LoadError::Unreadable(_) => {
                        let help = if path.starts_with("std/") {
                            "`std/...` names a file of the bundled stdlib-policies, for example `std/groups.scp`".to_string()
                        } else {
                            "paths are relative to the including file, then to each -I directory; `std/...` names the bundled library"
                                .to_string()
                        };
                        IncludeError::NotFound { path: path.to_string(), reason, span, help }
                    }
                };
                self.diags.push(error);
                return;
            }
        };
        if self.bytes + loaded.text.len() > MAX_UNIT_BYTES {
            self.diags.push(IncludeError::NotAFile {
                path: path.to_string(),
                reason: format!("the files of this unit would hold more than {} MiB", MAX_UNIT_BYTES >> 20),
                span: span.into(),
            });
            return;
        }
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
        self.bytes += loaded.text.len();
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
