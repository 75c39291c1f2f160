//! `scpc build` and `scpc test`.

use std::path::Path;

use scpc::abi::Arch;
use scpc::analysis::judge::run_on_filters;
use scpc::artifact::render::Emit;
use scpc::import::trace::{builtin_profile, read_profile};
use scpc::sema::{self, Options};
use scpc::{BuildOptions, CompileError};
use scpc_lang::diag::Diagnostics;
use scpc_lang::source::SourceMap;

use crate::{emit, MessageFormat};

/// `scpc build`'s arguments.
#[derive(clap::Args)]
pub(crate) struct BuildArgs {
    /// The policy file.
    file: String,
    /// The policy to compile.
    #[arg(long)]
    policy: String,
    /// Compile only for these targets of the policy.
    #[arg(long = "target", value_parser = crate::parse_arch)]
    targets: Vec<Arch>,
    /// Syscall frequencies (TSV, strace -c or strace -f output) to lay the filter out by.
    /// Without it, scpc's built-in profile (measured on common server workloads) is used,
    /// which the manifest records as `"profile": "builtin (...)"`; a file given here is
    /// recorded by its name and sha256. The profile changes the filter's layout (and so its
    /// bytes and sha256), never its decisions.
    #[arg(long)]
    profile: Option<String>,
    /// Audit-only: every decision other than allow becomes log.
    #[arg(long)]
    audit: bool,
    /// Output directory.
    #[arg(short = 'o', long = "out-dir", default_value = ".")]
    out_dir: String,
    /// Renderings to write (comma-separated): bpf (NAME.ARCH.bpf), c (a C header), rust (a Rust
    /// array), disasm (the annotated listing), oci (one Docker/OCI seccomp profile,
    /// NAME.oci.json, when the format can say what the policy says), systemd (NAME.systemd.conf:
    /// SystemCallFilter= lines, when systemd can say it).
    #[arg(long = "emit", value_name = "EMIT", value_delimiter = ',', default_value = "bpf")]
    renderings: Vec<String>,
    /// How to print diagnostics.
    #[arg(long = "message-format", value_name = "MESSAGE_FORMAT", value_enum, default_value = "human")]
    format: MessageFormat,
    /// Fail (exit 2, nothing written) unless every filter is proven equal to the source on
    /// every input, rather than validated by sampling.
    #[arg(long)]
    require_proof: bool,
}

/// Prints why a build of policy `name` made nothing, in the format asked for (the back
/// end's errors located at the policy's name); the exit status.
fn report_failure(e: CompileError, name: &str, unit: &scpc_lang::include::Unit, map: &SourceMap, format: MessageFormat) -> u8 {
    let code = if e.is_input_error() { 1 } else { 2 };
    match e {
        CompileError::Invalid => {}
        _ => emit_at_policy(e, name, unit, map, format),
    }
    code
}

/// Loads `file`, resolves its policy `name` for `targets` (all when empty) and prints the
/// diagnostics. `Err` is the exit status.
pub(crate) fn load_policy(
    file: &str,
    name: &str,
    targets: &[Arch],
    format: MessageFormat,
) -> Result<(scpc::ir::Policy, SourceMap, scpc_lang::include::Unit), u8> {
    let (mut map, mut diags) = (SourceMap::new(), Diagnostics::new());
    let unit = scpc::load(file, &crate::loader(), &mut map, &mut diags).map_err(|e| {
        eprintln!("error: {e}");
        2
    })?;
    let policy = scpc::session::resolve(&unit, &map, name, targets, &mut diags);
    emit(diags, &map, format);
    match policy {
        Ok(p) => Ok((p, map, unit)),
        Err(e) => Err(report_failure(e, name, &unit, &map, format)),
    }
}

pub(crate) fn build(a: BuildArgs) -> u8 {
    let emit_kinds = match a.renderings.iter().map(|r| r.parse::<Emit>()).collect::<Result<Vec<_>, _>>() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return 1;
        }
    };
    let profile = match read_profile(a.profile.as_deref()) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return 1;
        }
    };
    let (mut map, mut diags) = (SourceMap::new(), Diagnostics::new());
    let unit = match scpc::load(&a.file, &crate::loader(), &mut map, &mut diags) {
        Ok(u) => u,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    let options =
        BuildOptions { policy: a.policy, targets: a.targets, profile, audit: a.audit, emit: emit_kinds, require_proof: a.require_proof };
    let result = scpc::compile(&unit, &map, &options, &mut diags);
    emit(diags, &map, a.format);
    let bundle = match result {
        Ok(b) => b,
        Err(e) => return report_failure(e, &options.policy, &unit, &map, a.format),
    };
    if let Err(e) = bundle.write(Path::new(&a.out_dir)) {
        eprintln!("error: {e}");
        return 2;
    }
    for f in &bundle.filters {
        eprintln!(
            "{}.{}.bpf: {} instructions, {} ({}), {}",
            bundle.policy.name,
            f.arch,
            f.program.insns.len(),
            f.archs.iter().map(|a| a.name()).collect::<Vec<_>>().join("+"),
            if options.audit { "audit-only" } else { "enforcing" },
            if f.proven {
                "proven equal to the source on every input".to_string()
            } else {
                format!("validated by sampling ({} calls; not proven: the proof ran out of its node budget)", f.validated_cases)
            }
        );
    }
    0
}

/// Prints an error of the back end (which has no place in the source) at the policy's name,
/// in the format asked for.
fn emit_at_policy(
    e: impl miette::Diagnostic + Send + Sync + 'static,
    name: &str,
    unit: &scpc_lang::include::Unit,
    map: &SourceMap,
    format: MessageFormat,
) {
    let span = unit
        .files
        .iter()
        .flat_map(|f| &f.items)
        .find_map(|i| match i {
            scpc_lang::ast::Item::Policy(p) if p.name.name == name => Some(p.name.span),
            _ => None,
        })
        .unwrap_or_default();
    let mut diags = Diagnostics::new();
    diags.push(scpc_lang::diag::Located { inner: Box::new(e), span: span.into(), label: format!("policy `{name}`") });
    emit(diags, map, format);
}

pub(crate) fn test(files: &[String], format: MessageFormat) -> u8 {
    let mut worst = 0u8;
    let mut map = SourceMap::new();
    for path in files {
        let mut diags = Diagnostics::new();
        let unit = match scpc::load(path, &crate::loader(), &mut map, &mut diags) {
            Ok(u) => u,
            Err(e) => {
                eprintln!("error: {e}");
                worst = 2;
                continue;
            }
        };
        let checked = sema::analyze(&unit, &Options::default(), &mut diags);
        diags.drop_acknowledged(&map);
        if diags.has_errors() {
            emit(diags, &map, format);
            worst = worst.max(1);
            continue;
        }
        let mut test_diags = Diagnostics::new();
        let (outcome, errors) = run_on_filters(&unit, &checked, &builtin_profile(), &mut test_diags);
        for e in errors {
            eprintln!("{:?}", miette::Report::new(e));
            worst = 2;
        }
        if format == MessageFormat::Human {
            eprintln!("{path}: {} test case(s) on compiled filters, {} failed", outcome.cases, outcome.failed);
        }
        if test_diags.has_errors() {
            worst = worst.max(1);
        }
        emit(test_diags, &map, format);
    }
    worst
}
