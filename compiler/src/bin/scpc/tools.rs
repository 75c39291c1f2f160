//! `scpc sim`, `scpc disasm` and `scpc exec`: working with compiled filters.

use scpc::abi::Arch;
use scpc::bpf::disasm::{disasm as listing, ret_name};
use scpc::bpf::sim::{run, SeccompData};
use scpc::bpf::Program;

/// [`scpc::artifact::read_filter`] with its error as (exit status, message): the form
/// `bin/scpc/diff.rs` (being rewritten on issue 16's branch) still takes.
pub(crate) fn read_filter(path: &str) -> Result<Program, (u8, String)> {
    scpc::artifact::read_filter(path).map_err(|e| (e.exit_status(), e.to_string()))
}

pub(crate) fn sim(filter: &str, arch: Arch, syscall: &str, args: &[String]) -> u8 {
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
    match run(&program, &data) {
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
    let lenient = std::fs::read(filter).ok().and_then(|b| Program::from_bytes(&b)).filter(|p| !p.insns.is_empty());
    match (checked, lenient) {
        (Ok(p), _) => {
            print!("{}", listing(&p));
            0
        }
        (Err(e), Some(p)) if e.exit_status() == 1 => {
            print!("{}", listing(&p));
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
    let text = match std::fs::read_to_string(profile) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: cannot read `{profile}`: {e}");
            return 2;
        }
    };
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
