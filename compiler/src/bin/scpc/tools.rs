//! `scpc sim`, `scpc disasm` and `scpc exec`: working with compiled filters.

use scpc::abi::Arch;
use scpc::bpf::disasm::{annotated, annotated_lines, ret_name};
use scpc::bpf::sim::{run_traced, SeccompData};
use scpc::bpf::Program;
use scpc_lang::include::MAX_FILE_BYTES;

/// [`scpc::artifact::read_filter`] with its error as (exit status, message): the form
/// `bin/scpc/diff.rs` (being rewritten on issue 16's branch) still takes.
pub(crate) fn read_filter(path: &str) -> Result<Program, (u8, String)> {
    scpc::artifact::read_filter(path).map_err(|e| (e.exit_status(), e.to_string()))
}

pub(crate) fn sim(filter: &str, arch: Arch, syscall: &str, args: &[String], trace: bool) -> u8 {
    let program = match scpc::artifact::read_filter(filter) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return e.exit_status();
        }
    };
    let (nr, args) = match scpc::analysis::call::parse(arch, syscall, args) {
        Ok(call) => call,
        Err(e) => {
            eprintln!("error: {e}");
            return 1;
        }
    };
    let data = SeccompData { nr, arch: arch.table().audit_arch, instruction_pointer: 0, args };
    let (result, steps) = run_traced(&program, &data);
    if trace {
        let lines = annotated_lines(&program);
        println!("  line  A           X           instruction");
        for s in &steps {
            println!("  {:4}  {:#010x}  {:#010x}  {}", s.pc, s.a, s.x, lines.get(s.pc).map_or("", String::as_str));
        }
    }
    match result {
        Ok(o) => {
            println!(
                "{} ({} instructions executed, {} jumps taken{})",
                ret_name(o.ret),
                o.executed,
                o.taken,
                if o.read_args { ", arguments read" } else { "" }
            );
            if let Some((sys, since)) = arch.table().by_nr(nr).and_then(|s| Some((s, s.unfiltered_since?))) {
                println!(
                    "note: from Linux {since}, the kernel lets `{}` ({nr}) of {arch} through without running the filter: on those kernels this decision is never applied",
                    sys.name
                );
            }
            0
        }
        Err(e) => {
            eprintln!("error: the filter does not run: {e:?}");
            1
        }
    }
}

/// Lists a filter; one the kernel would refuse is still listed (to see why), then reported
/// with exit 1.
pub(crate) fn disasm(filter: &str) -> u8 {
    let checked = scpc::artifact::read_filter(filter);
    let bytes = std::fs::read(filter).unwrap_or_default();
    let header = scpc::artifact::listing_header(std::path::Path::new(filter), &bytes);
    let lenient = Program::from_bytes(&bytes).filter(|p| !p.insns.is_empty());
    match (checked, lenient) {
        (Ok(p), _) => {
            print!("{}", annotated(&p, &header));
            0
        }
        (Err(e @ scpc::artifact::FilterFileError::Source { .. }), _) => {
            eprintln!("error: {e}");
            e.exit_status()
        }
        (Err(e), Some(p)) if e.exit_status() == 1 => {
            print!("{}", annotated(&p, &header));
            eprintln!("error: {e}");
            1
        }
        (Err(e), _) => {
            eprintln!("error: {e}");
            e.exit_status()
        }
    }
}

/// The architecture of this machine's processes.
pub(crate) fn host_arch() -> Option<Arch> {
    scpc_node::run::host_arch().and_then(|h| Arch::from_name(h.name))
}

/// `scpc exec`: the node's own `run` (the same checks, the same loader), held to the build
/// manifest's sha256 (the one given, or `NAME.manifest.json` beside the filter).
pub(crate) fn exec(filter: &str, manifest: Option<&str>, flags: scpc_node::loader::Flags, command: &[String]) -> u8 {
    let command: Vec<std::ffi::OsString> = command.iter().map(Into::into).collect();
    let path = std::path::Path::new(filter);
    let error = match scpc_node::run::manifest_digest(path, manifest.map(std::path::Path::new))
        .and_then(|expected| scpc_node::run::read_filter(path, expected))
    {
        Ok(filter) => scpc_node::run::exec(&filter, flags, &command),
        Err(e) => e,
    };
    eprintln!("error: {error}");
    error.exit_status()
}

pub(crate) fn profile(traces: &[String]) -> u8 {
    let mut texts = Vec::new();
    for path in traces {
        match std::fs::read_to_string(path) {
            Ok(t) => texts.push((path.as_str(), t)),
            Err(e) => {
                eprintln!("error: cannot read `{path}`: {e}");
                return 2;
            }
        }
    }
    match scpc::import::trace::merged_counts(texts.iter().map(|(p, t)| (*p, t.as_str()))) {
        Ok(rows) => {
            println!("# syscall\tcount");
            for (name, c) in rows {
                println!("{name}\t{c}");
            }
            0
        }
        Err(e) => {
            eprintln!("error: {e}");
            1
        }
    }
}

pub(crate) fn generate(
    traces: &[String],
    name: String,
    targets: Vec<Arch>,
    trace_arch: Option<Arch>,
    default: String,
    output: Option<&str>,
) -> u8 {
    use scpc::analysis::generate::{checked_draft, DraftOptions, GenerateError, Observed};
    let mut obs = Observed::default();
    for path in traces {
        let text = match std::fs::read(path) {
            Ok(b) => String::from_utf8_lossy(&b).into_owned(),
            Err(e) => {
                eprintln!("error: cannot read `{path}`: {e}");
                return 2;
            }
        };
        if let Err(e) = obs.add(path, &text) {
            eprintln!("error: {e}");
            return 1;
        }
    }
    let trace_arch = trace_arch.or_else(host_arch);
    let targets = if targets.is_empty() { trace_arch.into_iter().collect() } else { targets };
    let options = DraftOptions { name: name.clone(), targets, default, trace_arch };
    let draft = match checked_draft(&obs, &options, output.unwrap_or("<draft>")) {
        Ok(t) => t,
        Err(e) => {
            let message = e.to_string();
            if let GenerateError::DoesNotCheck { diagnostics, map } = e {
                crate::emit(diagnostics, &map, crate::MessageFormat::Human);
            }
            eprintln!("error: {message}");
            return 1;
        }
    };
    for u in &draft.unmapped {
        eprintln!("warning: {u}");
    }
    let code = deliver(output, draft.text);
    if let (0, Some(path)) = (code, output) {
        eprintln!("{path}: policy `{name}` drafted from {} traced syscall(s)", obs.calls.len());
    }
    code
}

pub(crate) fn import_docker(profile: &str, name: Option<String>, caps: Vec<String>, output: Option<&str>) -> u8 {
    let Ok(text) = read_input(profile) else { return 2 };
    // (the importer refuses a translation that does not check, a bad --name included)
    let policy = match scpc::docker::import(profile, &text, &scpc::docker::ImportOptions { name, caps }) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{:?}", miette::Report::new(e));
            return 1;
        }
    };
    deliver(output, scpc::session::canonical(output.unwrap_or("<imported>"), policy))
}

/// Reads a text input of at most [`MAX_FILE_BYTES`] (a policy's own limit) from a file or from
/// standard input for `-`: `/dev/zero`, an endless pipe or a huge file is refused once the limit
/// is passed instead of filling memory.
pub(crate) fn read_text(path: &str) -> std::io::Result<String> {
    use std::io::Read;
    let reader: Box<dyn Read> = if path == "-" { Box::new(std::io::stdin()) } else { Box::new(std::fs::File::open(path)?) };
    let mut bytes = Vec::new();
    reader.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(std::io::Error::other(format!("it is larger than {} MiB", MAX_FILE_BYTES >> 20)));
    }
    String::from_utf8(bytes).map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "it is not UTF-8 text"))
}

/// Reads an input file (or standard input for `-`): the exit status when it cannot.
fn read_input(path: &str) -> Result<String, u8> {
    read_text(path).map_err(|e| {
        eprintln!("error: cannot read `{path}`: {e}");
        2
    })
}

/// Prints an import error: 2 when a file could not be read, else 1.
fn import_failed(e: scpc::import::ImportError) -> u8 {
    let code = if matches!(e, scpc::import::ImportError::Unreadable { .. }) { 2 } else { 1 };
    eprintln!("{:?}", miette::Report::new(e));
    code
}

pub(crate) fn import_seccompiler(file: &str, arch: Option<Arch>, output: Option<&str>) -> u8 {
    let text = match read_input(file) {
        Ok(t) => t,
        Err(code) => return code,
    };
    let Some(arch) = arch.or_else(|| scpc::import::seccompiler::arch_of_file_name(file)) else {
        eprintln!(
            "error: `{file}`: the architecture its filters are for is not in its name: give it with --arch (x86_64, aarch64, riscv64)"
        );
        return 1;
    };
    match scpc::import::seccompiler::import(file, &text, &scpc::import::seccompiler::SeccompilerOptions { arch }) {
        Ok(p) => deliver(output, scpc::session::canonical(output.unwrap_or("<imported>"), p)),
        Err(e) => import_failed(e),
    }
}

pub(crate) fn import_minijail(
    file: &str,
    opts: &scpc::import::minijail::MinijailOptions,
    output: Option<&str>,
    profile_out: Option<&str>,
) -> u8 {
    let imported = match scpc::import::minijail::import(std::path::Path::new(file), opts, &scpc::import::minijail::Disk) {
        Ok(i) => i,
        Err(e) => return import_failed(e),
    };
    if let Some(path) = profile_out {
        match &imported.profile {
            Some(tsv) => {
                let code = deliver(Some(path), tsv.clone());
                if code != 0 {
                    return code;
                }
            }
            None => eprintln!("note: `{file}` names no @frequency file: no profile written"),
        }
    } else if imported.profile.is_some() {
        eprintln!("note: `{file}` names an @frequency file: write it as a profile for `scpc build --profile` with --profile-out FILE");
    }
    deliver(output, scpc::session::canonical(output.unwrap_or("<imported>"), imported.policy))
}

pub(crate) fn import_kafel(file: &str, opts: scpc::import::kafel::KafelOptions, output: Option<&str>) -> u8 {
    let text = match read_input(file) {
        Ok(t) => t,
        Err(code) => return code,
    };
    match scpc::import::kafel::import(file, &text, &opts) {
        Ok(p) => deliver(output, scpc::session::canonical(output.unwrap_or("<imported>"), p)),
        Err(e) => import_failed(e),
    }
}

/// Writes `text` to `output` atomically, or to standard output: the exit status.
fn deliver(output: Option<&str>, text: String) -> u8 {
    match output {
        Some(path) => match scpc::session::write_atomically(path.as_ref(), &text) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("error: cannot write `{path}`: {e}");
                2
            }
        },
        None => {
            print!("{text}");
            0
        }
    }
}
