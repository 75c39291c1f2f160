//! The `scpc` command line: parses arguments, calls the library, prints. Exit status: 0
//! success, 1 the input is wrong (diagnostics printed), 2 scpc could not do its job.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use scpc::abi::Arch;
use scpc::report::{render_human, render_json};
use scpc::sema::{self, Options};
use scpc_lang::diag::Diagnostics;
use scpc_lang::source::SourceMap;

#[derive(Parser)]
#[command(name = "scpc", version = version_text(), about = "Compile, check and deploy Linux seccomp policies written in .scp")]
pub(crate) struct Cli {
    #[command(subcommand)]
    command: Command,
    /// When to print colors: auto (on a terminal, unless NO_COLOR is set; CLICOLOR_FORCE forces them), always, never.
    #[arg(long, value_enum, global = true, default_value = "auto", value_name = "WHEN")]
    color: ColorWhen,
    /// A directory policy files may include from (searched after the including file's own).
    #[arg(short = 'I', long = "include-dir", value_name = "DIR", global = true)]
    include_dirs: Vec<std::path::PathBuf>,
}

/// `--version`: scpc's and its ABI tables' kernel.
fn version_text() -> &'static str {
    static TEXT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    TEXT.get_or_init(scpc::version)
}

/// `--color`.
#[derive(Copy, Clone, PartialEq, Eq, ValueEnum)]
pub(crate) enum ColorWhen {
    /// On a terminal, unless NO_COLOR says otherwise (CLICOLOR_FORCE forces them).
    Auto,
    /// Always.
    Always,
    /// Never.
    Never,
}

/// `--color` of this run.
static COLOR: std::sync::OnceLock<ColorWhen> = std::sync::OnceLock::new();

/// Whether to color what goes to standard error.
pub(crate) fn stderr_color() -> bool {
    let choice = match COLOR.get().copied().unwrap_or(ColorWhen::Auto) {
        ColorWhen::Auto => scpc::report::ColorChoice::Auto,
        ColorWhen::Always => scpc::report::ColorChoice::Always,
        ColorWhen::Never => scpc::report::ColorChoice::Never,
    };
    let var = |k: &str| std::env::var(k).ok();
    scpc::report::use_color(choice, std::io::stderr().is_terminal(), var("NO_COLOR").as_deref(), var("CLICOLOR_FORCE").as_deref())
}

/// The `-I` directories of this run.
static INCLUDE_DIRS: std::sync::OnceLock<Vec<std::path::PathBuf>> = std::sync::OnceLock::new();

/// The loader of policy files: disk (with the `-I` directories) and the bundled library.
pub(crate) fn loader() -> scpc_lang::include::FsLoader {
    scpc::fs_loader_with(INCLUDE_DIRS.get().cloned().unwrap_or_default())
}

mod build;
#[cfg(feature = "deploy")]
mod deploy;
mod diff;
mod explain;
mod toolbox;
mod tools;

#[derive(Copy, Clone, PartialEq, Eq, ValueEnum)]
pub(crate) enum MessageFormat {
    /// Source snippets with labels and help, for people.
    Human,
    /// One JSON object per diagnostic and line, for tools.
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Parse, resolve, type-check against the ABI tables, lint, and run test blocks.
    Check {
        /// Policy files.
        #[arg(required = true)]
        files: Vec<String>,
        /// How to print diagnostics.
        #[arg(long, value_enum, default_value = "human")]
        message_format: MessageFormat,
        /// Treat warnings as errors (exit 1 if there are any).
        #[arg(long, short = 'D')]
        deny_warnings: bool,
        /// Check only these targets of each policy.
        #[arg(long = "target", value_parser = parse_arch)]
        targets: Vec<Arch>,
    },
    /// Compile a policy: NAME.ARCH.bpf for each target and NAME.manifest.json.
    Build(build::BuildArgs),
    /// Run the policies' test blocks on their compiled filters.
    Test {
        /// Policy files.
        #[arg(required = true)]
        files: Vec<String>,
        /// How to print diagnostics.
        #[arg(long, value_enum, default_value = "human")]
        message_format: MessageFormat,
    },
    /// Run a compiled filter on one call and print the decision.
    Sim {
        /// The filter (.bpf).
        filter: String,
        /// The architecture of the call.
        #[arg(long, value_parser = parse_arch)]
        arch: Arch,
        /// Syscall name or number.
        syscall: String,
        /// Arguments (decimal, 0x, 0o, 0b; negative values are two's complement).
        #[arg(allow_hyphen_values = true)]
        args: Vec<String>,
        /// Print every instruction executed, with A and X after it (as `seccomp-tools emu`).
        #[arg(long)]
        trace: bool,
    },
    /// Print a compiled filter as readable BPF with labels: syscalls, arguments and constants
    /// named, and a header with the policy, targets and sha256 (from the manifest beside it).
    Disasm {
        /// The filter (.bpf).
        filter: String,
    },
    /// Install a compiled filter (after setting no_new_privs) and exec a command under it.
    Exec {
        /// The filter (.bpf).
        filter: String,
        /// Synchronize the filter to all threads (SECCOMP_FILTER_FLAG_TSYNC).
        #[arg(long)]
        tsync: bool,
        /// Log every action the filter takes except allow (SECCOMP_FILTER_FLAG_LOG).
        #[arg(long)]
        log: bool,
        /// Leave speculative store bypass mitigation off (SECCOMP_FILTER_FLAG_SPEC_ALLOW).
        #[arg(long)]
        spec_allow: bool,
        /// The build manifest whose sha256 the filter must match (default: NAME.manifest.json
        /// beside the filter, when there is one).
        #[arg(long)]
        manifest: Option<String>,
        /// The command and its arguments.
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// Turn strace -c output, strace -f logs or a TSV into a frequency profile (TSV: syscall, count).
    Profile {
        /// Trace files.
        #[arg(required = true)]
        traces: Vec<String>,
    },
    /// Decode seccomp audit records (audit.log, dmesg, journal) and name the rule that decided.
    Explain(explain::ExplainArgs),
    /// Draft a least-privilege policy from strace -f logs, strace -c output or audit logs.
    Generate {
        /// Trace files.
        #[arg(required = true)]
        traces: Vec<String>,
        /// The policy's name.
        #[arg(long, default_value = "traced")]
        name: String,
        /// Its targets (default: the traces' architecture).
        #[arg(long = "target", value_parser = parse_arch)]
        targets: Vec<Arch>,
        /// The architecture the traces were taken on (default: this machine's); on the other
        /// targets each call is carried to the calls of its families there.
        #[arg(long, value_parser = parse_arch)]
        trace_arch: Option<Arch>,
        /// Its default action.
        #[arg(long, default_value = "kill_process")]
        default: String,
        /// Write the draft here instead of standard output.
        #[arg(short = 'o', long)]
        output: Option<String>,
    },
    /// Where two policies or compiled filters (or one of each) decide differently. Exit 0 when
    /// they decide the same everywhere, 1 when not.
    Diff {
        /// The old side: a .scp file or a .bpf filter.
        old: String,
        /// The new side: a .scp file or a .bpf filter.
        new: String,
        /// The policy to compare in both files (needed when a file defines several).
        #[arg(long)]
        policy: Option<String>,
        /// The policy of the old file.
        #[arg(long)]
        old_policy: Option<String>,
        /// The policy of the new file.
        #[arg(long)]
        new_policy: Option<String>,
        /// One JSON document instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Push the built artifacts to the hosts of an inventory: canaries first, then waves.
    #[cfg(feature = "deploy")]
    Deploy {
        /// The inventory (TOML).
        inventory: String,
        #[command(flatten)]
        fleet: FleetFlags,
        #[command(flatten)]
        operator: OperatorFlag,
        /// Connect and show, per host, what would change (and how the decisions change); write nothing.
        #[arg(long)]
        dry_run: bool,
        /// Canary hosts (overrides rollout.canary).
        #[arg(long)]
        canary: Option<usize>,
        /// Replace a file that is not a seccomp filter at a path scpc never installed to (a copy is kept).
        #[arg(long)]
        force: bool,
    },
    /// What each host runs, and where it drifts from the local build.
    #[cfg(feature = "deploy")]
    Status {
        /// The inventory (TOML).
        inventory: String,
        #[command(flatten)]
        fleet: FleetFlags,
    },
    /// Return hosts to the artifact they ran before the current one.
    #[cfg(feature = "deploy")]
    Rollback {
        /// The inventory (TOML).
        inventory: String,
        #[command(flatten)]
        fleet: FleetFlags,
        #[command(flatten)]
        operator: OperatorFlag,
    },
    /// Translate another tool's profile to .scp.
    Import {
        #[command(subcommand)]
        from: ImportFrom,
    },
    /// Rewrite files in canonical form (comments kept); `-` reads standard input and writes
    /// standard output.
    Fmt {
        /// Policy files (`-`: standard input).
        #[arg(required = true)]
        files: Vec<String>,
        /// Change nothing; print a diff and exit 1 if a file is not in canonical form.
        #[arg(long)]
        check: bool,
    },
    /// Look syscalls up by name or number: number, signature, first kernel, groups (as
    /// `scmp_sys_resolver`); with no name, the whole table.
    Syscalls {
        /// Names or numbers (seccomp_data.nr, decimal or 0x).
        queries: Vec<String>,
        /// The architecture (default: this machine's).
        #[arg(long, value_parser = parse_arch)]
        arch: Option<Arch>,
        /// JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// The syscall groups of std/groups.scp and their members per architecture (as
    /// `systemd-analyze syscall-filter`).
    Groups {
        /// Groups (`@basic-io` or `basic-io`; all when none).
        names: Vec<String>,
        /// Architectures (repeatable; default: this machine's).
        #[arg(long = "arch", value_parser = parse_arch)]
        archs: Vec<Arch>,
        /// JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Write the seccomp filters a running process is under as .bpf files (as `seccomp-tools
    /// dump`; needs CAP_SYS_ADMIN); compare one with its policy by `scpc diff POLICY FILE`.
    Dump {
        /// The process (or thread) id.
        #[arg(long)]
        pid: i32,
        /// Directory to write PID.N.bpf to (N = 0 is the filter installed last).
        #[arg(short = 'o', long = "out-dir", default_value = ".")]
        out_dir: String,
    },
    /// Print a completion script for a shell (bash, zsh, fish, elvish, powershell).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff), or write one per command into a directory.
    Man {
        /// Write scpc.1 and scpc-COMMAND.1 here instead of printing scpc.1.
        #[arg(short = 'o', long = "out-dir")]
        out_dir: Option<String>,
    },
}

/// Flags every fleet command takes.
#[cfg(feature = "deploy")]
#[derive(clap::Args)]
struct FleetFlags {
    /// Only this host (repeatable).
    #[arg(long = "host")]
    hosts: Vec<String>,
    /// Hosts worked on at once (overrides rollout.concurrency).
    #[arg(long)]
    concurrency: Option<usize>,
    /// Record the keys of hosts not yet in known_hosts (a changed key is always refused).
    #[arg(long)]
    accept_new: bool,
    /// One JSON report on stdout instead of the table.
    #[arg(long)]
    json: bool,
}

/// `--operator`, for the commands that change hosts (deploy, rollback).
#[cfg(feature = "deploy")]
#[derive(clap::Args)]
struct OperatorFlag {
    /// Who is deploying, recorded on the hosts (default: $USER).
    #[arg(long)]
    operator: Option<String>,
}

#[cfg(feature = "deploy")]
impl FleetFlags {
    fn into_args(
        self,
        verb: scpc_deploy::report::Command,
        inventory: String,
        operator: Option<String>,
        dry_run: bool,
        canary: Option<usize>,
        force: bool,
    ) -> deploy::FleetArgs {
        let operator = operator.or_else(|| std::env::var("USER").ok()).unwrap_or_else(|| "unknown".into());
        let opts = scpc_deploy::rollout::Options {
            dry_run,
            accept_new: self.accept_new,
            canary,
            concurrency: self.concurrency,
            hosts: self.hosts,
            operator,
            force,
        };
        deploy::FleetArgs { verb, inventory, opts, json: self.json }
    }
}

#[derive(Subcommand)]
enum ImportFrom {
    /// A Docker/OCI seccomp profile (JSON).
    Docker {
        /// The profile.
        profile: String,
        /// The policy's name (default: the file's stem).
        #[arg(long)]
        name: Option<String>,
        /// A capability the container has (entries that need it are kept).
        #[arg(long = "cap")]
        caps: Vec<String>,
        /// Write here instead of standard output.
        #[arg(short = 'o', long)]
        output: Option<String>,
    },
    /// Firecracker's seccompiler JSON: one policy per thread filter.
    Seccompiler {
        /// The JSON file.
        file: String,
        /// The architecture it is compiled for (x86_64, aarch64, riscv64; default: from the
        /// file's name, as Firecracker names them).
        #[arg(long, value_parser = parse_arch)]
        arch: Option<Arch>,
        /// Write here instead of standard output.
        #[arg(short = 'o', long)]
        output: Option<String>,
    },
    /// A minijail .policy file (with its @include files; @frequency becomes a profile).
    Minijail {
        /// The policy file.
        file: String,
        /// The architecture (default: that of the constants.json beside the file).
        #[arg(long, value_parser = parse_arch)]
        arch: Option<Arch>,
        /// minijail's constants.json (default: the one beside the file, if any).
        #[arg(long)]
        constants: Option<String>,
        /// The policy's name (default: the file's stem).
        #[arg(long)]
        name: Option<String>,
        /// Write here instead of standard output.
        #[arg(short = 'o', long)]
        output: Option<String>,
        /// Write the @frequency counts here as a profile for `scpc build --profile`.
        #[arg(long)]
        profile_out: Option<String>,
    },
    /// A kafel policy (nsjail's seccomp_string, kafel .policy files).
    Kafel {
        /// The policy file (`-`: standard input).
        file: String,
        /// Architectures to compile for (repeatable; default x86_64).
        #[arg(long = "target", value_parser = parse_arch)]
        targets: Vec<Arch>,
        /// The policy's name (default: the file's stem).
        #[arg(long)]
        name: Option<String>,
        /// Write here instead of standard output.
        #[arg(short = 'o', long)]
        output: Option<String>,
    },
}

/// `--target` / `--arch` named no architecture.
#[derive(Debug, thiserror::Error)]
#[error("unknown architecture `{name}` (choose from {})", Arch::ALL.map(Arch::name).join(", "))]
pub(crate) struct UnknownArch {
    name: String,
}

pub(crate) fn parse_arch(s: &str) -> Result<Arch, UnknownArch> {
    Arch::from_name(s).ok_or_else(|| UnknownArch { name: s.to_string() })
}

fn main() -> ExitCode {
    scpc_node::loader::default_sigpipe();
    let cli = Cli::parse();
    let _ = INCLUDE_DIRS.set(cli.include_dirs.clone());
    let _ = COLOR.set(cli.color);
    let code = match cli.command {
        Command::Check { files, message_format, deny_warnings, targets } => check(&files, message_format, deny_warnings, targets),
        Command::Fmt { files, check } => fmt(&files, check),
        Command::Build(args) => build::build(args),
        Command::Test { files, message_format } => build::test(&files, message_format),
        Command::Sim { filter, arch, syscall, args, trace } => tools::sim(&filter, arch, &syscall, &args, trace),
        Command::Disasm { filter } => tools::disasm(&filter),
        Command::Profile { traces } => tools::profile(&traces),
        Command::Import { from: ImportFrom::Docker { profile, name, caps, output } } => {
            tools::import_docker(&profile, name, caps, output.as_deref())
        }
        Command::Import { from: ImportFrom::Seccompiler { file, arch, output } } => {
            tools::import_seccompiler(&file, arch, output.as_deref())
        }
        Command::Import { from: ImportFrom::Minijail { file, arch, constants, name, output, profile_out } } => {
            let opts = scpc::import::minijail::MinijailOptions { arch, constants: constants.map(Into::into), name };
            tools::import_minijail(&file, &opts, output.as_deref(), profile_out.as_deref())
        }
        Command::Import { from: ImportFrom::Kafel { file, targets, name, output } } => {
            tools::import_kafel(&file, scpc::import::kafel::KafelOptions { targets, name }, output.as_deref())
        }
        Command::Diff { old, new, policy, old_policy, new_policy, json } => {
            diff::diff(&diff::DiffArgs { old, new, policy, old_policy, new_policy, json })
        }
        #[cfg(feature = "deploy")]
        Command::Deploy { inventory, fleet, operator, dry_run, canary, force } => {
            deploy::run(fleet.into_args(scpc_deploy::report::Command::Deploy, inventory, operator.operator, dry_run, canary, force))
        }
        #[cfg(feature = "deploy")]
        Command::Status { inventory, fleet } => {
            deploy::run(fleet.into_args(scpc_deploy::report::Command::Status, inventory, None, false, None, false))
        }
        #[cfg(feature = "deploy")]
        Command::Rollback { inventory, fleet, operator } => {
            deploy::run(fleet.into_args(scpc_deploy::report::Command::Rollback, inventory, operator.operator, false, None, false))
        }
        Command::Generate { traces, name, targets, trace_arch, default, output } => {
            tools::generate(&traces, name, targets, trace_arch, default, output.as_deref())
        }
        Command::Explain(args) => explain::explain(&args),
        Command::Syscalls { queries, arch, json } => toolbox::syscalls(&queries, arch, json),
        Command::Groups { names, archs, json } => toolbox::groups(&names, archs, json),
        Command::Dump { pid, out_dir } => toolbox::dump(pid, &out_dir),
        Command::Completions { shell } => toolbox::completions(shell),
        Command::Man { out_dir } => toolbox::man(out_dir.as_deref()),
        Command::Exec { filter, tsync, log, spec_allow, manifest, command } => {
            tools::exec(&filter, manifest.as_deref(), scpc_node::loader::Flags { tsync, log, spec_allow }, &command)
        }
    };
    ExitCode::from(code)
}

/// Prints diagnostics to stderr (human) or stdout (JSON).
pub(crate) fn emit(diags: Diagnostics, map: &SourceMap, format: MessageFormat) {
    let items = diags.into_sorted();
    match format {
        MessageFormat::Json => {
            let _ = std::io::stdout().write_all(render_json(&items, map).as_bytes());
        }
        MessageFormat::Human => {
            let color = stderr_color();
            let _ = std::io::stderr().lock().write_all(render_human(&items, map, color, 100).as_bytes());
        }
    }
}

fn check(files: &[String], format: MessageFormat, deny_warnings: bool, targets: Vec<Arch>) -> u8 {
    let loader = loader();
    let options = Options { targets };
    let mut map = SourceMap::new();
    let mut worst = 0u8;
    for path in files {
        let mut diags = Diagnostics::new();
        let unit = match scpc::load(path, &loader, &mut map, &mut diags) {
            Ok(unit) => unit,
            Err(reason) => {
                eprintln!("error: {reason}");
                worst = 2;
                continue;
            }
        };
        let checked = sema::analyze(&unit, &options, &mut diags);
        diags.drop_acknowledged(&map);
        let (errors, warnings) = (diags.error_count(), diags.warning_count());
        let failed = errors > 0 || (deny_warnings && warnings > 0);
        emit(diags, &map, format);
        if format == MessageFormat::Human {
            // last, so that it does not scroll away above the diagnostics
            let status = if failed { "failed" } else { "ok" };
            let n = checked.policies.len();
            let names: Vec<&str> = checked.policies.keys().map(String::as_str).collect();
            let names = if names.is_empty() { String::new() } else { format!(" ({})", names.join(", ")) };
            eprintln!(
                "{path}: {status}: {n} polic{}{names}, {} test case(s) run on the reference interpreter, {errors} error(s), {warnings} warning(s)",
                if n == 1 { "y" } else { "ies" },
                checked.tests.cases,
            );
        }
        if failed {
            worst = worst.max(1);
        }
    }
    worst
}

fn fmt(files: &[String], check: bool) -> u8 {
    let mut worst = 0u8;
    for path in files {
        let stdin = path == "-";
        let text = match tools::read_text(path) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("error: cannot read `{path}`: {e}");
                worst = 2;
                continue;
            }
        };
        let name = if stdin { "<stdin>" } else { path.as_str() };
        let formatted = match scpc::session::format(name, &text) {
            Ok(f) => f,
            Err(e) => {
                emit(e.diagnostics, &e.map, MessageFormat::Human);
                worst = worst.max(1);
                continue;
            }
        };
        if stdin && !check {
            print!("{formatted}");
            continue;
        }
        if formatted == text {
            continue;
        }
        if check {
            print!("{}", scpc::session::format_diff(name, &text, &formatted));
            eprintln!("{name}: not in canonical form (run `scpc fmt {path}`)");
            worst = worst.max(1);
        } else if let Err(e) = scpc::session::write_atomically(path.as_ref(), &formatted) {
            eprintln!("error: cannot write `{path}`: {e}");
            worst = 2;
        }
    }
    worst
}
