//! `scpc sim`, `scpc disasm` and `scpc exec`: working with compiled filters.

use std::os::unix::process::CommandExt;
use std::process::Command;

use scpc::abi::Arch;
use scpc::bpf::disasm::{disasm as listing, ret_name};
use scpc::bpf::sim::{run, SeccompData};
use scpc::bpf::{Program, BPF_JEQ, BPF_JMP, BPF_K};

/// Reads a `.bpf` file and checks it as the kernel would before loading it; a bad one is
/// the user's error (1), located by instruction and byte.
pub(crate) fn read_filter(path: &str) -> Result<Program, (u8, String)> {
    let bytes = std::fs::read(path).map_err(|e| (2, format!("cannot read `{path}`: {e}")))?;
    let program = Program::from_bytes(&bytes).ok_or((
        1,
        format!(
            "{path}: byte {}: not a filter: its size ({} bytes) is not a multiple of 8\n  help: a .bpf file holds 8-byte struct sock_filter records, as `scpc build` writes them",
            bytes.len() / 8 * 8,
            bytes.len()
        ),
    ))?;
    if program.insns.is_empty() {
        return Err((1, format!("{path}: byte 0: the file is empty\n  help: build a filter with `scpc build FILE --policy NAME`")));
    }
    scpc::bpf::sim::check(&program).map_err(|e| {
        (1, format!("{path}: {e}\n  help: the kernel would refuse this filter; rebuild it with `scpc build` (see it with `scpc disasm`)"))
    })?;
    Ok(program)
}

fn number(s: &str) -> Option<u64> {
    let (neg, s) = s.strip_prefix('-').map_or((false, s), |r| (true, r));
    let s = s.replace('_', "");
    let v = if let Some(h) = s.strip_prefix("0x") {
        u64::from_str_radix(h, 16).ok()?
    } else if let Some(o) = s.strip_prefix("0o") {
        u64::from_str_radix(o, 8).ok()?
    } else if let Some(b) = s.strip_prefix("0b") {
        u64::from_str_radix(b, 2).ok()?
    } else {
        s.parse().ok()?
    };
    Some(if neg { v.wrapping_neg() } else { v })
}

pub(crate) fn sim(filter: &str, arch: Arch, syscall: &str, args: &[String]) -> u8 {
    let program = match read_filter(filter) {
        Ok(p) => p,
        Err((code, msg)) => {
            eprintln!("error: {msg}");
            return code;
        }
    };
    let table = arch.table();
    let Some(nr) = table.syscall(syscall).map(|s| s.nr).or_else(|| number(syscall).and_then(|n| u32::try_from(n).ok())) else {
        let help = scpc::suggest::did_you_mean(syscall, table.syscalls.iter().map(|s| s.name), "give a syscall name or number");
        eprintln!("error: `{syscall}` is not a syscall of {arch}: {help}");
        return 1;
    };
    if args.len() > 6 {
        eprintln!("error: a syscall has at most 6 arguments");
        return 1;
    }
    let mut a = [0u64; 6];
    for (i, s) in args.iter().enumerate() {
        let Some(v) = number(s).or_else(|| table.constant(s)) else {
            eprintln!("error: argument {} `{s}` is neither a number nor a constant of {arch}", i + 1);
            return 1;
        };
        a[i] = v;
    }
    let data = SeccompData { nr, arch: table.audit_arch, instruction_pointer: 0, args: a };
    match run(&program, &data) {
        Ok(o) => {
            println!(
                "{} ({} instructions executed, {} jumps taken{})",
                ret_name(o.ret),
                o.executed,
                o.taken,
                if o.read_args { ", arguments read" } else { "" }
            );
            if let Some((sys, since)) = table.by_nr(nr).and_then(|s| Some((s, s.unfiltered_since?))) {
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
    let checked = read_filter(filter);
    let lenient = std::fs::read(filter).ok().and_then(|b| Program::from_bytes(&b)).filter(|p| !p.insns.is_empty());
    match (checked, lenient) {
        (Ok(p), _) => {
            print!("{}", listing(&p));
            0
        }
        (Err((1, msg)), Some(p)) => {
            print!("{}", listing(&p));
            eprintln!("error: {msg}");
            1
        }
        (Err((code, msg)), _) => {
            eprintln!("error: {msg}");
            code
        }
    }
}

/// The architecture of this machine's processes.
pub(crate) fn host_arch() -> Option<Arch> {
    match std::env::consts::ARCH {
        "x86_64" => Some(Arch::X86_64),
        "x86" => Some(Arch::I386),
        "aarch64" => Some(Arch::Aarch64),
        "arm" => Some(Arch::Arm),
        "riscv64" => Some(Arch::Riscv64),
        _ => None,
    }
}

pub(crate) fn exec(filter: &str, manifest: Option<&str>, flags: scpc::install::Flags, command: &[String]) -> u8 {
    let program = match read_filter(filter) {
        Ok(p) => p,
        Err((code, msg)) => {
            eprintln!("error: {msg}");
            return code;
        }
    };
    if let Err((code, msg)) = check_manifest(filter, manifest, &program) {
        eprintln!("error: {msg}");
        return code;
    }
    let Some(arch) = host_arch() else {
        eprintln!("error: scpc does not know this machine's architecture ({})", std::env::consts::ARCH);
        return 2;
    };
    let audit = arch.table().audit_arch;
    if !program.insns.iter().any(|i| i.code == BPF_JMP | BPF_JEQ | BPF_K && i.k == audit) {
        eprintln!("error: `{filter}` has no code for {arch}, the architecture of this machine: build it with `--target {arch}`");
        return 1;
    }
    let mut cmd = Command::new(&command[0]);
    cmd.args(&command[1..]);
    scpc::install::with_filter(&mut cmd, program, flags);
    let err = cmd.exec();
    let what = match err.raw_os_error() {
        Some(libc::EINVAL) => {
            "the kernel refused the filter or a flag (EINVAL): check that this kernel supports the actions and flags used".to_string()
        }
        Some(libc::EFAULT) => "the kernel could not read the filter (EFAULT)".to_string(),
        Some(libc::EACCES) => "not allowed to install a filter (EACCES): no_new_privs could not be set".to_string(),
        _ => format!("cannot run `{}`: {err}", command[0]),
    };
    eprintln!("error: {what}");
    2
}

/// The filter must be the one its build manifest lists, byte for byte: the manifest given,
/// else `NAME.manifest.json` beside `NAME.ARCH.bpf` when there is one. The bytes hashed are the
/// bytes about to be loaded.
fn check_manifest(filter: &str, manifest: Option<&str>, program: &Program) -> Result<(), (u8, String)> {
    let path = std::path::Path::new(filter);
    let file = path.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
    let manifest = match manifest {
        Some(m) => std::path::PathBuf::from(m),
        None => {
            let stem = file.strip_suffix(".bpf").and_then(|s| s.rsplit_once('.')).map(|(name, _arch)| name);
            match stem.map(|name| path.with_file_name(format!("{name}.manifest.json"))) {
                Some(beside) if beside.exists() => beside,
                _ => return Ok(()),
            }
        }
    };
    let shown = manifest.display();
    let text = std::fs::read_to_string(&manifest).map_err(|e| (2, format!("cannot read the manifest `{shown}`: {e}")))?;
    let json: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| (1, format!("{shown}: line {}, column {}: not a build manifest: {e}", e.line(), e.column())))?;
    let listed = json["targets"].as_array().into_iter().flatten().find(|t| t["file"].as_str() == Some(file.as_str()));
    let Some(expected) = listed.and_then(|t| t["sha256"].as_str()) else {
        return Err((1, format!("{shown} does not list `{file}`: refusing to load a filter its build did not write")));
    };
    let actual = scpc::artifact::sha256(&program.to_bytes());
    if actual != expected {
        return Err((
            1,
            format!("`{filter}` is not the filter {shown} lists (sha256 {actual}, the manifest says {expected}): refusing to load it\n  help: rebuild it with `scpc build`, or name the right manifest with --manifest"),
        ));
    }
    Ok(())
}

pub(crate) fn profile(traces: &[String]) -> u8 {
    let mut total: std::collections::BTreeMap<String, f64> = std::collections::BTreeMap::new();
    for path in traces {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("error: cannot read `{path}`: {e}");
                return 2;
            }
        };
        match scpc::profile::Profile::parse_counts(path, &text) {
            Ok(counts) => {
                for (name, c) in counts {
                    *total.entry(name).or_default() += c;
                }
            }
            Err(e) => {
                eprintln!("error: {e}");
                return 1;
            }
        }
    }
    let mut rows: Vec<(String, f64)> = total.into_iter().collect();
    rows.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    println!("# syscall\tcount");
    for (name, c) in rows {
        println!("{name}\t{c}");
    }
    0
}

pub(crate) fn generate(traces: &[String], name: String, targets: Vec<Arch>, default: String, output: Option<&str>) -> u8 {
    use scpc::generate::{draft, DraftOptions, Observed};
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
    if obs.calls.is_empty() {
        eprintln!("error: the traces show no syscalls (help: trace with `strace -f -o TRACE CMD`)");
        return 1;
    }
    let targets = if targets.is_empty() { host_arch().into_iter().collect() } else { targets };
    if targets.is_empty() {
        eprintln!("error: this machine's architecture is unknown: name the targets with --target");
        return 1;
    }
    let text = draft(&obs, &DraftOptions { name: name.clone(), targets, default });
    // the draft must check; a bad --default or --name is the user's, anything else is ours
    let file = output.unwrap_or("<draft>");
    let (checked, diags, map) = scpc::check_source(file, &text);
    if diags.has_errors() || !checked.policies.contains_key(&name) {
        crate::emit(diags, &map, crate::MessageFormat::Human);
        eprintln!("error: the draft does not check (see above): check --name and --default");
        return 1;
    }
    let code = deliver(output, canonical(file, text));
    if let (0, Some(path)) = (code, output) {
        eprintln!("{path}: policy `{name}` allowing {} syscall(s)", obs.calls.len());
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
    let file = output.unwrap_or("<imported>");
    deliver(output, canonical(file, policy))
}

/// Writes `text` to `output` atomically, or to standard output: the exit status.
fn deliver(output: Option<&str>, text: String) -> u8 {
    match output {
        Some(path) => match crate::write_atomically(path, &text) {
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

/// `text` in canonical form (unchanged if it does not parse).
fn canonical(file: &str, text: String) -> String {
    let mut map = scpc_lang::source::SourceMap::new();
    let id = map.add(file, text.as_str());
    let mut diags = scpc_lang::diag::Diagnostics::new();
    match scpc_lang::syntax::parse_file(&map, id, &mut diags) {
        Some(ast) => scpc_lang::fmt::format(&ast, &text, map.file(id).base),
        None => text,
    }
}
