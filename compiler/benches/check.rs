//! `scpc check` on a generated policy of 5,000 rules (issue: front end benchmark). Run with
//! `cargo bench -p scpc-compiler --bench check`; prints the median of several runs of the
//! whole front end (parse, resolve, type-check on three targets, lints).

use std::time::{Duration, Instant};

use scpc::abi::Arch;

/// A base policy and a derived one with `rules` rules spread over real syscalls, with
/// conditions on named arguments, sets and masks, on x86_64, aarch64 and arm.
fn generate(rules: usize) -> String {
    let table = Arch::X86_64.table();
    let with_fd: Vec<&str> = table
        .syscalls
        .iter()
        .filter(|s| {
            s.params.first().is_some_and(|p| p.name == "fd") && Arch::Aarch64.table().syscall(s.name).is_some() && s.name != "finit_module"
        })
        .map(|s| s.name)
        .collect();
    let mut text = String::from("include \"std/groups.scp\"\nconst LIMIT = 0x1000\n");
    text.push_str("policy base {\n    target x86_64, aarch64, arm\n    kernel >= 5.4\n    default kill_process\n    allow @basic-io, @signal, @timer\n");
    text.push_str("    final kill_process init_module, finit_module\n}\n\npolicy big extends base {\n");
    for i in 0..rules {
        let sys = with_fd[i % with_fd.len()];
        let line = match i % 4 {
            0 => format!("    errno({}) {sys} if fd == {}\n", 1 + i % 100, i),
            1 => format!("    allow {sys} if fd in {{{}, {}, {}}} && fd & 0xff != 0\n", i, i + 1, i + 2),
            2 => format!("    trap({}) {sys} if fd > LIMIT || !(fd < {})\n", i % 60000, i),
            _ => format!("    log {sys} if fd & 0x{:x} == 0\n", i | 1),
        };
        text.push_str(&line);
    }
    text.push_str("}\n");
    text
}

fn main() {
    let text = generate(5000);
    let mut times = Vec::new();
    for _ in 0..7 {
        let start = Instant::now();
        let (checked, diags, _) = scpc::check_source("big.scp", &text);
        times.push(start.elapsed());
        let errors: Vec<String> = diags.iter().filter(|d| scpc_lang::diag::is_error(d.as_ref())).map(|d| d.to_string()).collect();
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(checked.policies["big"].rules.len(), 5000 + 2);
    }
    times.sort();
    let median: Duration = times[times.len() / 2];
    println!(
        "scpc check, 5000 rules x 3 targets ({} bytes): median {:.1} ms, min {:.1} ms over {} runs",
        text.len(),
        median.as_secs_f64() * 1e3,
        times[0].as_secs_f64() * 1e3,
        times.len()
    );
}
