//! `scpc syscalls`, `scpc groups`, `scpc dump`, `scpc completions` and `scpc man`.

use std::path::Path;

use clap::CommandFactory;
use scpc::abi::Arch;
use scpc::analysis::syscalls::{groups_text, lookup, syscalls_text, table};

use crate::tools::host_arch;

/// The architecture asked for, or this machine's.
fn arch_or_host(arch: Option<Arch>) -> Result<Arch, u8> {
    arch.or_else(host_arch).ok_or_else(|| {
        eprintln!("error: this machine's architecture is not one scpc knows: name one with --arch");
        1
    })
}

fn print_json<T: serde::Serialize>(value: &T) {
    println!("{}", serde_json::to_string_pretty(value).unwrap_or_default());
}

pub(crate) fn syscalls(queries: &[String], arch: Option<Arch>, json: bool) -> u8 {
    let arch = match arch_or_host(arch) {
        Ok(a) => a,
        Err(code) => return code,
    };
    let found = if queries.is_empty() { Ok(table(arch)) } else { lookup(arch, queries) };
    match found {
        Ok(found) if json => {
            print_json(&found);
            0
        }
        Ok(found) => {
            print!("{}", syscalls_text(&found));
            0
        }
        Err(e) => {
            eprintln!("{:?}", miette::Report::new(e));
            1
        }
    }
}

pub(crate) fn groups(names: &[String], archs: Vec<Arch>, json: bool) -> u8 {
    let archs = if archs.is_empty() {
        match arch_or_host(None) {
            Ok(a) => vec![a],
            Err(code) => return code,
        }
    } else {
        archs
    };
    match scpc::analysis::syscalls::groups(names, &archs) {
        Ok(found) if json => {
            print_json(&found);
            0
        }
        Ok(found) => {
            print!("{}", groups_text(&found));
            0
        }
        Err(e) => {
            eprintln!("{:?}", miette::Report::new(e));
            1
        }
    }
}

/// Reads the filters of `pid` (scpc-node's [`scpc_node::dump::read_filters`], which `scpc
/// status` shares) and writes each as `DIR/PID.N.bpf`.
pub(crate) fn dump(pid: i32, out_dir: &str) -> u8 {
    let filters = match scpc_node::dump::read_filters(pid) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: {e}");
            return e.exit_status();
        }
    };
    if let Err(e) = std::fs::create_dir_all(out_dir) {
        eprintln!("error: cannot create `{out_dir}`: {e}");
        return 2;
    }
    for (i, insns) in filters.iter().enumerate() {
        let path = Path::new(out_dir).join(format!("{pid}.{i}.bpf"));
        let bytes = scpc_node::bpf::encode(insns);
        if let Err(e) = scpc::session::write_atomically(&path, &bytes) {
            eprintln!("error: cannot write `{}`: {e}", path.display());
            return 2;
        }
        let which = match (i, filters.len()) {
            (0, 1) => "its only filter".to_string(),
            (0, _) => "the filter installed last".to_string(),
            (i, n) if i + 1 == n => "the filter installed first".to_string(),
            _ => format!("filter {i} (counting back from the last installed)"),
        };
        eprintln!("{}: {} instructions, {which}, sha256 {}", path.display(), insns.len(), scpc_node::Sha256::of(&bytes));
    }
    if filters.len() > 1 {
        eprintln!("note: the kernel runs every filter and takes the decision of highest precedence");
    }
    0
}

pub(crate) fn completions(shell: clap_complete::Shell) -> u8 {
    let mut cmd = crate::Cli::command();
    clap_complete::generate(shell, &mut cmd, "scpc", &mut std::io::stdout());
    0
}

pub(crate) fn man(out_dir: Option<&str>) -> u8 {
    let cmd = crate::Cli::command();
    let render = |c: clap::Command| -> std::io::Result<Vec<u8>> {
        let mut buf = Vec::new();
        clap_mangen::Man::new(c).render(&mut buf)?;
        Ok(buf)
    };
    let Some(dir) = out_dir else {
        return match render(cmd) {
            Ok(page) => {
                use std::io::Write;
                let _ = std::io::stdout().write_all(&page);
                0
            }
            Err(e) => {
                eprintln!("error: {e}");
                2
            }
        };
    };
    if let Err(e) = std::fs::create_dir_all(dir) {
        eprintln!("error: cannot create `{dir}`: {e}");
        return 2;
    }
    let mut pages = vec![("scpc.1".to_string(), cmd.clone())];
    for sub in cmd.get_subcommands() {
        let name = format!("scpc-{}", sub.get_name());
        // (clap names commands by &'static str; this runs once per page)
        let page_name: &'static str = Box::leak(name.clone().into_boxed_str());
        pages.push((format!("{name}.1"), sub.clone().name(page_name)));
    }
    for (file, page) in pages {
        let path = Path::new(dir).join(&file);
        match render(page).and_then(|bytes| scpc::session::write_atomically(&path, bytes)) {
            Ok(()) => {}
            Err(e) => {
                eprintln!("error: cannot write `{}`: {e}", path.display());
                return 2;
            }
        }
    }
    0
}
