//! Random well-typed policies through the whole back end: every one must compile and pass
//! translation validation (the emulator agreeing with the reference interpreter on every
//! syscall number and every argument boundary), on random sets of targets. Layering, a group,
//! `final` rules, every condition operator (the generator is `policygen/`, shared with the
//! real-kernel runs). `SCPC_STRESS=1` runs the full-scale count.

mod policygen;

use proptest::prelude::*;
use scpc::artifact::compile;
use scpc::profile::Profile;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Random policies per run: `SCPC_STRESS=1` for the full-scale run (TESTING.md).
fn policies() -> u32 {
    if std::env::var_os("SCPC_STRESS").is_some() {
        2048
    } else {
        160
    }
}

#[test]
fn random_policies_compile_and_validate() {
    let cases = AtomicUsize::new(0);
    let accepted = AtomicUsize::new(0);
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: policies(),
        max_global_rejects: policies() * 20,
        ..ProptestConfig::default()
    });
    let result = runner.run(&policygen::policy(&policygen::DIFFERENTIAL), |text| {
        let (checked, diags, _) = scpc::check_source("r.scp", &text);
        prop_assume!(!diags.has_errors());
        accepted.fetch_add(1, Ordering::Relaxed);
        for name in ["base", "child"] {
            let policy = &checked.policies[name];
            for profile in [Profile::uniform(), scpc::import::trace::builtin_profile()] {
                match compile(policy, &profile) {
                    Ok(filters) => {
                        assert!(filters.iter().all(|f| f.proven), "every random policy's filter is proven");
                        cases.fetch_add(filters.iter().map(|f| f.validated_cases).sum::<usize>(), Ordering::Relaxed);
                    }
                    Err(e) => prop_assert!(false, "{name}: {e}\n{text}"),
                }
            }
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    println!(
        "{} random policies (base and child, 2 profiles each): {} calls decided alike by the reference interpreter and the emulator on the compiled filters",
        accepted.load(Ordering::Relaxed),
        cases.load(Ordering::Relaxed)
    );
}
