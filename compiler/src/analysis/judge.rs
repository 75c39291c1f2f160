//! The second judge of `test` blocks (`scpc test`): every policy's filters compiled as `scpc
//! build` compiles them, and each test line run on the filter a host of its architecture
//! loads, by the BPF emulator ([`crate::bpf::sim`]). The checker ([`crate::sema`]) asks it
//! through [`FilterJudge`] and knows nothing of BPF.

use std::collections::BTreeMap;

use crate::abi::Arch;
use crate::artifact::{compile, BuildError};
use crate::bpf::sim::{run, SeccompData};
use crate::bpf::Program;
use crate::profile::Profile;
use crate::sema::{Checked, FilterJudge};

/// Compiled filters by policy and host architecture.
#[derive(Clone, Debug, Default)]
pub struct CompiledFilters {
    programs: BTreeMap<(String, Arch), Program>,
    /// The filters are audit-only builds (`build --audit`): what a line expects is seen through
    /// the same change, every decision but `allow` becoming `log`.
    audit: bool,
}

impl CompiledFilters {
    /// The filters of one build of policy `name` (`scpc build` runs its test blocks on them);
    /// `audit` when they are an audit-only build.
    pub fn of_build(name: &str, filters: &[crate::artifact::Filter], audit: bool) -> CompiledFilters {
        let programs = filters.iter().map(|f| ((name.to_string(), f.arch), f.program.clone())).collect();
        CompiledFilters { programs, audit }
    }

    /// Compiles every policy of a checked unit with `profile`; the policies that fail are
    /// left out and their errors returned beside.
    pub fn compile(checked: &Checked, profile: &Profile) -> (CompiledFilters, Vec<BuildError>) {
        let (mut out, mut errors) = (CompiledFilters::default(), Vec::new());
        for (name, policy) in &checked.policies {
            match compile(policy, profile) {
                Ok(filters) => {
                    for f in filters {
                        out.programs.insert((name.clone(), f.arch), f.program);
                    }
                }
                Err(e) => errors.push(e),
            }
        }
        (out, errors)
    }
}

impl FilterJudge for CompiledFilters {
    fn ret(&self, policy: &str, arch: Arch, nr: u32, args: &[u64; 6]) -> Option<u32> {
        let program = self.programs.get(&(policy.to_string(), arch))?;
        let data = SeccompData { nr, arch: arch.table().audit_arch, instruction_pointer: 0, args: *args };
        run(program, &data).ok().map(|o| o.ret)
    }

    fn expected(&self, action: crate::policy::Action) -> crate::policy::Action {
        if self.audit && action != crate::policy::Action::Allow {
            crate::policy::Action::Log
        } else {
            action
        }
    }
}

/// `scpc test`: every policy of a checked unit compiled with `profile` (as `scpc build` would),
/// and the unit's test blocks run on those filters; failures go to `diags`, and the policies
/// that did not compile come back beside the outcome (their lines then fail as having no
/// filter).
pub fn run_on_filters(
    unit: &scpc_lang::include::Unit,
    checked: &Checked,
    profile: &Profile,
    diags: &mut scpc_lang::diag::Diagnostics,
) -> (crate::sema::TestOutcome, Vec<BuildError>) {
    let (filters, errors) = CompiledFilters::compile(checked, profile);
    let outcome = crate::sema::run_tests(unit, checked, crate::sema::Judge::Compiled(&filters), diags);
    (outcome, errors)
}
