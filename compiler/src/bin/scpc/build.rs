//! `scpc build` and `scpc test`.

use std::collections::BTreeMap;

use scpc::abi::Arch;
use scpc::artifact::{self, Emit, Manifest, SourceEntry, TargetEntry};
use scpc::profile::Profile;
use scpc::sema::{self, Judge, Options};
use scpc_lang::diag::Diagnostics;
use scpc_lang::source::SourceMap;

use crate::{emit, write_atomically, MessageFormat};

pub(crate) struct BuildArgs {
    pub file: String,
    pub policy: String,
    pub targets: Vec<Arch>,
    pub profile: Option<String>,
    pub audit: bool,
    pub out_dir: String,
    pub renderings: Vec<String>,
    pub format: MessageFormat,
}

fn load_profile(path: Option<&str>) -> Result<Profile, String> {
    let Some(path) = path else { return Ok(Profile::builtin()) };
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read profile `{path}`: {e}"))?;
    Profile::parse(path, &text)
}

/// Loads `file`, resolves its policy `name` for `targets` (all when empty) and prints the
/// diagnostics. `Err` is the exit status.
pub(crate) fn load_policy(
    file: &str,
    name: &str,
    targets: &[Arch],
    format: MessageFormat,
) -> Result<(scpc::policy::Policy, SourceMap, scpc_lang::include::Unit), u8> {
    let (mut map, mut diags) = (SourceMap::new(), Diagnostics::new());
    let unit = match scpc::load(file, &crate::loader(), &mut map, &mut diags) {
        Ok(u) => u,
        Err(reason) => {
            eprintln!("error: {reason}");
            return Err(2);
        }
    };
    let options = Options { targets: targets.to_vec() };
    let policy = sema::resolve(&unit, name, &options, &mut diags);
    diags.drop_acknowledged(&map);
    let failed = diags.has_errors();
    emit(diags, &map, format);
    let Some(policy) = policy.filter(|_| !failed) else { return Err(1) };
    if policy.targets.is_empty() {
        eprintln!("error: policy `{name}` has none of the requested targets");
        return Err(1);
    }
    Ok((policy, map, unit))
}

pub(crate) fn build(a: &BuildArgs) -> u8 {
    let renderings: Vec<Option<Emit>> = match a
        .renderings
        .iter()
        .map(|r| match r.as_str() {
            "bpf" => Ok(Some(Emit::Bpf)),
            "c" => Ok(Some(Emit::C)),
            "rust" => Ok(Some(Emit::Rust)),
            "disasm" => Ok(Some(Emit::Disasm)),
            "oci" => Ok(None),
            other => Err(format!("unknown rendering `{other}` (choose from bpf, c, rust, oci, disasm)")),
        })
        .collect()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return 1;
        }
    };
    let profile = match load_profile(a.profile.as_deref()) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return 1;
        }
    };
    let (mut policy, map, unit) = match load_policy(&a.file, &a.policy, &a.targets, a.format) {
        Ok(loaded) => loaded,
        Err(code) => return code,
    };
    if a.audit {
        if policy.kernel < scpc::abi::KernelVersion::new(4, 14) {
            eprintln!("error: --audit turns decisions into `log`, which needs Linux 4.14; the policy says `kernel >= {}`", policy.kernel);
            return 1;
        }
        policy = artifact::audit(&policy);
    }
    let filters = match artifact::compile(&policy, &profile) {
        Ok(f) => f,
        Err(e) => {
            let code = if matches!(e, artifact::BuildError::Codegen(scpc::codegen::CodegenError::TooLarge { .. })) { 1 } else { 2 };
            emit_at_policy(e, &policy.name, &unit, &map, a.format);
            return code;
        }
    };
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    let mut targets = Vec::new();
    for f in &filters {
        let bytes = f.program.to_bytes();
        let file = format!("{}.{}.bpf", policy.name, f.arch);
        targets.push(TargetEntry {
            arch: f.arch.to_string(),
            archs: f.archs.iter().map(|a| a.to_string()).collect(),
            file: file.clone(),
            sha256: artifact::sha256(&bytes),
            instructions: f.program.insns.len(),
            default_action: policy.default.to_string(),
            audit: a.audit,
        });
        for r in renderings.iter().flatten() {
            files.push((format!("{}.{}.{}", policy.name, f.arch, r.extension()), artifact::render(&policy.name, f, *r)));
        }
    }
    if renderings.contains(&None) {
        // one profile for every target: the format names architectures, not filters
        match scpc::oci::export(&policy) {
            Ok(json) => files.push((format!("{}.oci.json", policy.name), json.into_bytes())),
            Err(e) => {
                emit_at_policy(e, &policy.name, &unit, &map, a.format);
                return 1;
            }
        }
    }
    let sources = unit_sources(&map, &unit);
    let manifest = Manifest {
        policy: policy.name.clone(),
        compiler: format!("scpc {}", env!("CARGO_PKG_VERSION")),
        sources,
        profile: profile.source.clone(),
        audit: a.audit,
        kernel: policy.kernel.to_string(),
        targets,
    };
    let json = serde_json::to_string_pretty(&manifest).unwrap_or_default() + "\n";
    files.push((format!("{}.manifest.json", policy.name), json.into_bytes()));
    if let Err(e) = std::fs::create_dir_all(&a.out_dir) {
        eprintln!("error: cannot create `{}`: {e}", a.out_dir);
        return 2;
    }
    for (name, bytes) in &files {
        let path = std::path::Path::new(&a.out_dir).join(name);
        if let Err(e) = write_atomically(&path.to_string_lossy(), bytes) {
            eprintln!("error: cannot write `{}`: {e}", path.display());
            return 2;
        }
    }
    for f in &filters {
        eprintln!(
            "{}.{}.bpf: {} instructions, {} ({}), {} calls validated against the source",
            policy.name,
            f.arch,
            f.program.insns.len(),
            f.archs.iter().map(|a| a.name()).collect::<Vec<_>>().join("+"),
            if a.audit { "audit-only" } else { "enforcing" },
            f.validated_cases
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

fn unit_sources(map: &SourceMap, unit: &scpc_lang::include::Unit) -> Vec<SourceEntry> {
    let mut out: Vec<SourceEntry> = unit
        .files
        .iter()
        .map(|f| {
            let file = map.file(f.file);
            SourceEntry { file: file.name.clone(), sha256: artifact::sha256(file.text.as_bytes()) }
        })
        .collect();
    out.sort_by(|a, b| a.file.cmp(&b.file));
    out
}

pub(crate) fn test(files: &[String], format: MessageFormat) -> u8 {
    let mut worst = 0u8;
    let mut map = SourceMap::new();
    for path in files {
        let mut diags = Diagnostics::new();
        let unit = match scpc::load(path, &crate::loader(), &mut map, &mut diags) {
            Ok(u) => u,
            Err(reason) => {
                eprintln!("error: {reason}");
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
        // the artifacts `scpc build` would write: one filter per target architecture
        let mut programs = BTreeMap::new();
        for (name, policy) in &checked.policies {
            match artifact::compile(policy, &Profile::builtin()) {
                Ok(filters) => {
                    for f in filters {
                        programs.insert((name.clone(), f.arch), f.program);
                    }
                }
                Err(e) => {
                    eprintln!("{:?}", miette::Report::new(e));
                    worst = 2;
                }
            }
        }
        let mut test_diags = Diagnostics::new();
        let outcome = sema::run_tests(&unit, &checked, Judge::Compiled(&programs), &mut test_diags);
        let failed = test_diags.has_errors();
        if format == MessageFormat::Human {
            eprintln!("{path}: {} test case(s) on compiled filters, {} failed", outcome.cases, outcome.failed);
        }
        emit(test_diags, &map, format);
        if failed {
            worst = worst.max(1);
        }
    }
    worst
}
