//! `scpc-node`: the program a node runs.
//!
//! `scpc-node serve` reads one JSON request on standard input and writes one JSON response
//! on standard output (`scpc_node::protocol`, docs/deploy.md): exit status 0 done, 1 the
//! request is wrong, 2 the job failed.
//!
//! `scpc-node run [--tsync] [--log] [--spec-allow] [--sha256 HEX] FILTER -- CMD [ARG...]`
//! refuses a filter the kernel would refuse, one without code for this machine's
//! architecture, or (with `--sha256`) one whose bytes are not those; else it sets
//! no_new_privs, installs the filter and becomes CMD. Exit status when it gives up: 1 the
//! filter or the arguments are wrong, 2 it could not do its job (a file that cannot be read),
//! and as `env` says it, 127 when CMD is not found, 126 when it cannot be run.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use scpc_node::loader::Flags;
use scpc_node::run::{exec, read_filter};
use scpc_node::Sha256;

const USAGE: &str =
    "usage: scpc-node run [--tsync] [--log] [--spec-allow] [--sha256 HEX] FILTER -- CMD [ARG...]\n       scpc-node serve < REQUEST.json";

/// `run`'s arguments.
struct RunArgs {
    filter: PathBuf,
    flags: Flags,
    sha256: Option<Sha256>,
    command: Vec<OsString>,
}

/// What is wrong with `run`'s arguments.
#[derive(Debug)]
enum UsageError {
    /// `--sha256` without 64 hex digits after it.
    Digest(String),
    /// An option `run` does not take.
    UnknownOption(String),
    /// A second path before `--`.
    Unexpected(String),
    /// No filter.
    NoFilter,
    /// Nothing after `--`.
    NoCommand,
}

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UsageError::Digest(why) => write!(f, "--sha256: {why}"),
            UsageError::UnknownOption(o) => write!(f, "unknown option `{o}`"),
            UsageError::Unexpected(a) => write!(f, "unexpected `{a}` before `--`"),
            UsageError::NoFilter => f.write_str("no FILTER given"),
            UsageError::NoCommand => f.write_str("no command given after `--`"),
        }
    }
}

/// Reads `run`'s arguments.
fn parse_run(args: &[OsString]) -> Result<RunArgs, UsageError> {
    let mut flags = Flags::default();
    let (mut filter, mut sha256) = (None, None);
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.to_str() {
            Some("--") => break,
            Some("--tsync") => flags.tsync = true,
            Some("--log") => flags.log = true,
            Some("--spec-allow") => flags.spec_allow = true,
            Some("--sha256") => {
                let hex = it.next().and_then(|h| h.to_str()).ok_or(UsageError::Digest("needs 64 hex digits".into()))?;
                sha256 = Some(hex.parse::<Sha256>().map_err(|e| UsageError::Digest(format!("{hex}: {e}")))?);
            }
            Some(flag) if flag.starts_with('-') => return Err(UsageError::UnknownOption(flag.to_string())),
            _ if filter.is_none() => filter = Some(PathBuf::from(arg)),
            _ => return Err(UsageError::Unexpected(arg.to_string_lossy().into_owned())),
        }
    }
    let command: Vec<OsString> = it.cloned().collect();
    let filter = filter.ok_or(UsageError::NoFilter)?;
    if command.is_empty() {
        return Err(UsageError::NoCommand);
    }
    Ok(RunArgs { filter, flags, sha256, command })
}

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    match args.first().and_then(|a| a.to_str()) {
        Some("run") => {}
        Some("serve") if args.len() == 1 => {
            let out: std::sync::Arc<std::sync::Mutex<dyn std::io::Write + Send>> =
                std::sync::Arc::new(std::sync::Mutex::new(std::io::stdout()));
            return ExitCode::from(scpc_node::serve::serve(&mut std::io::stdin(), out));
        }
        Some("--version" | "-V") => {
            println!("scpc-node {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        Some("--help" | "-h" | "help") => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        _ => {
            eprintln!("error: {USAGE}");
            return ExitCode::from(1);
        }
    }
    let run = match parse_run(&args[1..]) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}\n{USAGE}");
            return ExitCode::from(1);
        }
    };
    let error = match read_filter(&run.filter, run.sha256) {
        Ok(filter) => exec(&filter, run.flags, &run.command),
        Err(e) => e,
    };
    eprintln!("error: {error}");
    ExitCode::from(error.exit_status())
}
