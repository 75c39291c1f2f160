//! The checker: resolves names (consts, groups, policies, `extends` chains, targets) and types
//! every rule on every target architecture against the ABI tables, producing one resolved
//! [`Policy`] per policy. It reports every problem it finds to the [`Diagnostics`] sink and
//! carries on; the caller decides whether to stop.
//!
//! It does not compile: the result is the hand-off to the back end.

mod consts;
mod error;
mod lints;
mod rules;
mod testblocks;

use std::collections::{BTreeMap, HashMap};

use scpc_lang::ast::{self, Item, StmtKind};
use scpc_lang::diag::Diagnostics;
use scpc_lang::include::Unit;
use scpc_lang::source::Span;

use crate::abi::{Arch, KernelVersion};
use crate::policy::Policy;
use crate::suggest::did_you_mean;

pub use error::SemaError;
pub use testblocks::{FilterJudge, Judge, TestOutcome};

/// The oldest kernel assumed when a policy chain has no `kernel >=` (the first with
/// KILL_PROCESS and LOG, and the oldest long-term kernel still common on edge fleets).
pub const DEFAULT_KERNEL: KernelVersion = KernelVersion::new(4, 14);

/// How many policies an `extends` chain may hold, the policy itself included.
pub const MAX_EXTENDS_DEPTH: usize = 64;

/// Options that narrow what is checked.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Compile only for these targets (each must be a target of the policy); empty: all.
    pub targets: Vec<Arch>,
}

/// Everything a unit defines, by name; the first definition wins, later ones are reported.
pub(crate) struct Scope<'u> {
    pub consts: HashMap<&'u str, &'u ast::ConstDecl>,
    pub groups: HashMap<&'u str, &'u ast::GroupDecl>,
    pub policies: BTreeMap<&'u str, &'u ast::PolicyDecl>,
    pub tests: Vec<&'u ast::TestDecl>,
}

impl<'u> Scope<'u> {
    fn collect(unit: &'u Unit, diags: &mut Diagnostics) -> Scope<'u> {
        let mut scope = Scope { consts: HashMap::new(), groups: HashMap::new(), policies: BTreeMap::new(), tests: Vec::new() };
        let mut first: HashMap<(&str, &str), Span> = HashMap::new();
        let mut dup = |kind: &'static str, name: &'u ast::Ident, diags: &mut Diagnostics| -> bool {
            match first.get(&(kind, name.name.as_str())) {
                Some(&f) => {
                    diags.push(SemaError::Duplicate { kind, name: name.name.clone(), span: name.span.into(), first: f.into() });
                    true
                }
                None => {
                    first.insert((kind, name.name.as_str()), name.span);
                    false
                }
            }
        };
        for item in unit.files.iter().flat_map(|f| &f.items) {
            match item {
                Item::Const(c) if !dup("const", &c.name, diags) => {
                    scope.consts.insert(&c.name.name, c);
                }
                Item::Group(g) if !dup("group", &g.name, diags) => {
                    scope.groups.insert(&g.name.name, g);
                }
                Item::Policy(p) if !dup("policy", &p.name, diags) => {
                    scope.policies.insert(&p.name.name, p);
                }
                Item::Test(t) => scope.tests.push(t),
                _ => {}
            }
        }
        scope
    }
}

/// The checker's state over one unit.
pub(crate) struct Checker<'u, 'd> {
    pub scope: Scope<'u>,
    pub diags: &'d mut Diagnostics,
    /// (const, architecture, whether gaps were reported when it was evaluated) -> value.
    pub const_memo: HashMap<(&'u str, Arch, bool), Option<u64>>,
    /// group -> its syscalls as indices into [`crate::abi::all_syscall_names`], sorted.
    pub group_memo: HashMap<&'u str, Option<Vec<u32>>>,
    /// Report every policy whose chain is too long, not only the first of a chain (for
    /// resolving one policy, whose failure must always be explained).
    pub report_every_deep_chain: bool,
}

/// The result of checking a unit.
#[derive(Debug, Default)]
pub struct Checked {
    /// Every policy that resolved, by name (in a unit with errors, some may be missing or
    /// incomplete: use them only when the sink has no errors).
    pub policies: BTreeMap<String, Policy>,
    /// The test blocks' lines run on the reference interpreter.
    pub tests: TestOutcome,
}

/// Checks every item of a unit: consts, groups, every policy on each of its targets, and the
/// test blocks (run on the reference interpreter).
pub fn analyze(unit: &Unit, options: &Options, diags: &mut Diagnostics) -> Checked {
    let mut ck = Checker::new(unit, diags);
    ck.check_consts();
    ck.check_groups();
    let names: Vec<&str> = ck.scope.policies.keys().copied().collect();
    let mut checked = Checked::default();
    for name in names {
        if let Some(policy) = ck.policy(name, options) {
            ck.check_requested_targets(&policy, options);
            checked.policies.insert(name.to_string(), policy);
        }
    }
    let tests = ck.scope.tests.clone();
    for t in tests {
        let outcome = ck.check_test(t, &checked, Judge::Reference);
        checked.tests.cases += outcome.cases;
        checked.tests.failed += outcome.failed;
    }
    checked
}

/// Resolves one policy of a unit (for `build`): reports what is wrong with the unit and that
/// policy. Returns `None` if the policy does not exist (reported).
pub fn resolve(unit: &Unit, name: &str, options: &Options, diags: &mut Diagnostics) -> Option<Policy> {
    let mut ck = Checker::new(unit, diags);
    ck.report_every_deep_chain = true;
    ck.check_consts();
    ck.check_groups();
    if !ck.scope.policies.contains_key(name) {
        ck.diags.push(no_such_policy(unit, name));
        return None;
    }
    // every layer of the chain is checked as `scpc check` checks it, not only the policy built
    let decl = ck.scope.policies[name];
    if let Some(chain) = ck.chain(decl) {
        for ancestor in chain.iter().skip(1).rev() {
            ck.policy(&ancestor.name.name, options);
        }
    }
    let policy = ck.policy(name, options)?;
    ck.check_requested_targets(&policy, options);
    Some(policy)
}

/// The policies a unit's root file defines (else, when it defines none, every policy of the
/// unit), in source order: the choices `--policy` has, and the one it may leave out.
pub fn root_policies(unit: &Unit) -> Vec<&ast::Ident> {
    fn of(f: &ast::File) -> impl Iterator<Item = &ast::Ident> {
        f.items.iter().filter_map(|i| match i {
            Item::Policy(p) => Some(&p.name),
            _ => None,
        })
    }
    let root: Vec<&ast::Ident> = unit.files.first().into_iter().flat_map(of).collect();
    if root.is_empty() {
        unit.files.iter().flat_map(of).collect()
    } else {
        root
    }
}

/// `--policy NAME` of no policy: located at the policy the name is closest to (else the first
/// the file defines, else the file's start), every policy of the file marked and listed.
pub fn no_such_policy(unit: &Unit, name: &str) -> SemaError {
    let defined = root_policies(unit);
    let names: Vec<&str> = defined.iter().map(|i| i.name.as_str()).collect();
    let closest = crate::suggest::closest(name, names.iter().copied());
    let primary = closest.and_then(|c| defined.iter().find(|i| i.name == c)).or(defined.first());
    let span = primary.map_or_else(|| unit.files.first().map_or(Span::default(), |f| Span::new(f.span.lo, f.span.lo)), |i| i.span);
    let others = defined
        .iter()
        .filter(|i| primary.is_none_or(|p| !std::ptr::eq(*p, **i)))
        .map(|i| miette::LabeledSpan::new_with_span(Some(format!("policy `{}`", i.name)), i.span))
        .collect();
    let label = match primary {
        Some(p) => format!("policy `{}`", p.name),
        None => "this file defines no policy".to_string(),
    };
    let list =
        if names.is_empty() { "no policy".to_string() } else { names.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ") };
    let help = match closest {
        Some(c) => format!("did you mean `{c}`? the file defines {list}"),
        None => format!("the file defines {list}: name one of them with --policy"),
    };
    SemaError::NoSuchPolicy { name: name.to_string(), span: span.into(), label, others, help }
}

/// Runs the test blocks of a checked unit with `judge` (the compiled filters, for `scpc
/// test`); failures go to `diags`.
pub fn run_tests(unit: &Unit, checked: &Checked, judge: Judge<'_>, diags: &mut Diagnostics) -> TestOutcome {
    let mut ck = Checker::new(unit, diags);
    let tests = ck.scope.tests.clone();
    let mut total = TestOutcome::default();
    for t in tests {
        let o = ck.check_test(t, checked, judge);
        total.cases += o.cases;
        total.failed += o.failed;
    }
    total
}

impl<'u, 'd> Checker<'u, 'd> {
    /// `--target` narrowed a policy to none of its targets: an error at its name (otherwise
    /// nothing of it would be checked, and `check` would pass where `build` fails).
    fn check_requested_targets(&mut self, policy: &Policy, options: &Options) {
        if options.targets.is_empty() || !policy.targets.is_empty() {
            return;
        }
        let Some(decl) = self.scope.policies.get(policy.name.as_str()).copied() else { return };
        let names = |archs: &[Arch]| archs.iter().map(|a| a.name()).collect::<Vec<_>>().join(", ");
        let declared = self.chain(decl).and_then(|c| {
            c.iter().find_map(|p| {
                p.stmts.iter().find_map(|s| match &s.kind {
                    StmtKind::Target(a) => Some(a.iter().filter_map(|i| Arch::from_name(&i.name)).collect::<Vec<_>>()),
                    _ => None,
                })
            })
        });
        let targets = names(declared.as_deref().unwrap_or_default());
        self.diags.push(SemaError::NotATarget {
            policy: policy.name.clone(),
            requested: names(&options.targets),
            span: decl.name.span.into(),
            help: format!("its targets are {targets}: name one of them with --target, or add the architecture to its `target` statement"),
            targets,
        });
    }

    fn new(unit: &'u Unit, diags: &'d mut Diagnostics) -> Checker<'u, 'd> {
        let scope = Scope::collect(unit, diags);
        Checker { scope, diags, const_memo: HashMap::new(), group_memo: HashMap::new(), report_every_deep_chain: false }
    }

    /// The policy and its parents, nearest first. `None` (reported) if a parent is unknown,
    /// the chain loops, or it is longer than [`MAX_EXTENDS_DEPTH`] policies. Checking a policy
    /// costs its chain's length, so the cap keeps a unit of n policies linear in n.
    pub fn chain(&mut self, p: &'u ast::PolicyDecl) -> Option<Vec<&'u ast::PolicyDecl>> {
        let mut chain = vec![p];
        let mut cur = p;
        while let Some(parent) = &cur.extends {
            let Some(&next) = self.scope.policies.get(parent.name.as_str()) else {
                let help = did_you_mean(&parent.name, self.scope.policies.keys().copied(), "define it, or include the file that does");
                self.diags.push(SemaError::UnknownPolicy { name: parent.name.clone(), span: parent.span.into(), help });
                return None;
            };
            if chain.iter().any(|c| std::ptr::eq(*c, next)) {
                let mut names: Vec<&str> = chain.iter().map(|c| c.name.name.as_str()).collect();
                names.push(&next.name.name);
                self.diags.push(SemaError::ExtendsCycle { name: p.name.name.clone(), chain: names.join(" -> "), span: parent.span.into() });
                return None;
            }
            chain.push(next);
            cur = next;
            if chain.len() > MAX_EXTENDS_DEPTH {
                // Reported once per chain: by the first policy past the cap. A policy whose
                // parent is past it too stays silent (its parent reports), which one more
                // step up tells.
                let parent_too_deep = cur.extends.is_some();
                if !parent_too_deep || self.report_every_deep_chain {
                    let extends = p.extends.as_ref().map_or(p.name.span, |e| e.span);
                    self.diags.push(SemaError::ExtendsTooDeep { name: p.name.name.clone(), max: MAX_EXTENDS_DEPTH, span: extends.into() });
                }
                return None;
            }
        }
        Some(chain)
    }

    /// A policy's own one-per-policy statements, duplicates reported.
    pub fn settings(&mut self, p: &'u ast::PolicyDecl) -> Settings<'u> {
        let mut s = Settings::default();
        for stmt in &p.stmts {
            let (slot_span, key): (Option<Span>, &'static str) = match &stmt.kind {
                StmtKind::Target(_) => (s.target.as_ref().map(|t| t.1), "target"),
                StmtKind::Kernel(_) => (s.kernel.as_ref().map(|k| k.1), "kernel"),
                StmtKind::Default(_) => (s.default.map(|a| a.span), "default"),
                StmtKind::BadArch(_) => (s.badarch.map(|a| a.span), "badarch"),
                StmtKind::Newer(_) => (s.newer.map(|a| a.span), "newer"),
                StmtKind::Rule(_) => continue,
            };
            if let Some(first) = slot_span {
                self.diags.push(SemaError::DuplicateStatement {
                    stmt: key,
                    policy: p.name.name.clone(),
                    span: stmt.span.into(),
                    first: first.into(),
                });
                continue;
            }
            match &stmt.kind {
                StmtKind::Target(archs) => s.target = Some((self.archs(archs), stmt.span)),
                StmtKind::Kernel(v) => s.kernel = Some((KernelVersion::new(v.major, v.minor), stmt.span)),
                StmtKind::Default(a) => s.default = Some(a),
                StmtKind::BadArch(a) => s.badarch = Some(a),
                StmtKind::Newer(a) => s.newer = Some(a),
                StmtKind::Rule(_) => {}
            }
        }
        s
    }

    fn archs(&mut self, idents: &[ast::Ident]) -> Vec<Arch> {
        let mut out = Vec::new();
        for i in idents {
            match Arch::from_name(&i.name) {
                Some(a) if out.contains(&a) => self.diags.push(SemaError::DuplicateTarget { name: i.name.clone(), span: i.span.into() }),
                Some(a) => out.push(a),
                None => {
                    let names = Arch::ALL.map(Arch::name);
                    let help = did_you_mean(&i.name, names, &format!("architectures are {}", names.join(", ")));
                    self.diags.push(SemaError::UnknownArch { name: i.name.clone(), span: i.span.into(), help });
                }
            }
        }
        out.sort();
        out
    }
}

/// The one-per-policy statements of one policy (not inherited).
#[derive(Default)]
pub(crate) struct Settings<'u> {
    pub target: Option<(Vec<Arch>, Span)>,
    pub kernel: Option<(KernelVersion, Span)>,
    pub default: Option<&'u ast::Action>,
    pub badarch: Option<&'u ast::Action>,
    pub newer: Option<&'u ast::Action>,
}
