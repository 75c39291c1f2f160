//! Enforcement, end to end: after `scpc deploy` a real service on a real node runs under the
//! deployed filter (a call the policy forbids fails in it), and `scpc status` proves it with
//! the kernel's own copy of the loaded program (PTRACE_SECCOMP_GET_FILTER) compared byte for
//! byte; a hand edit of the file shows as drift, a restart without the filter as
//! not-enforced. On an x86_64 node (sshd in namespaces) and on the aarch64 VM node (Debian's
//! arm64 kernel under qemu), with a service of `kind = "command"` started by its reload command
//! through `scpc-node run` (the way docs/deploy.md shows for init systems without systemd).

mod testbed;

use testbed::support::{need, scpc, sha256, TEST_BED};
use testbed::{build_policy, fleet_json, report_host, Fleet, Spec, VmArch, EDGE};

/// The service: a shell loop that makes a directory every 200 ms and writes `allowed` or
/// `denied` to `probe.out`; started under the filter by `scpc-node run`,
/// its process id in `probe.pid`.
const SERVICE: &str = r#"[[service]]
name = "probe"
policy = "probe"
path = "/srv/edge/probe.bpf"
pid_file = "/srv/edge/probe.pid"
reload = '''
[ -f /srv/edge/probe.pid ] && kill $(cat /srv/edge/probe.pid) 2>/dev/null; rm -f /srv/edge/probe.out
/var/lib/scpc/scpc-node run /srv/edge/probe.bpf -- /bin/sh -c 'while :; do rmdir /tmp/probe-dir 2>/dev/null; if mkdir /tmp/probe-dir 2>/dev/null; then echo allowed; else echo denied; fi > /srv/edge/probe.new; mv -f /srv/edge/probe.new /srv/edge/probe.out; sleep 0.2; done' </dev/null >/dev/null 2>&1 &
echo $! > /srv/edge/probe.pid
'''
health = "for i in $(seq 150); do grep -q denied /srv/edge/probe.out 2>/dev/null && exit 0; sleep 0.2; done; cat /srv/edge/probe.out >&2; exit 1"
"#;

/// The same loop started by hand without the filter (a restart that forgot it).
const UNFILTERED: &str = "kill $(cat /srv/edge/probe.pid); rm -f /srv/edge/probe.out; \
    /bin/sh -c 'while :; do rmdir /tmp/probe-dir 2>/dev/null; if mkdir /tmp/probe-dir 2>/dev/null; then echo allowed; else echo denied; fi > /srv/edge/probe.new; mv -f /srv/edge/probe.new /srv/edge/probe.out; sleep 0.2; done' </dev/null >/dev/null 2>&1 & \
    echo $! > /srv/edge/probe.pid";

/// What the service wrote last, once it says `want` (or after 30 s, whatever it says: a TCG
/// guest on a loaded machine can take seconds per round of the loop). The loop renames each
/// answer into place, so a reader never sees a half-written file.
fn probe_output(node: &testbed::Node, want: &str) -> String {
    let (_, out) = node.run(&format!(
        "for i in $(seq 150); do grep -q {want} {EDGE}/probe.out 2>/dev/null && break; sleep 0.2; done; cat {EDGE}/probe.out"
    ));
    out
}

fn status(inv: &std::path::Path) -> (i32, serde_json::Value) {
    let (code, out, err) = scpc(&["status", inv.to_str().expect("utf-8"), "--json"]);
    (code, serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}\n{err}")))
}

#[test]
fn the_deployed_filter_really_runs_in_the_service_and_status_proves_it() {
    need(&TEST_BED);
    let mut fleet = Fleet::new("enforce");
    fleet.add("x86", Spec::default());
    fleet.add_vm("arm64", VmArch::Aarch64);
    fleet.known_hosts();
    let art = build_policy(&fleet, "probe.scp", "probe", "probe");
    let inv = fleet.inventory(&art, "canary = 0\ncommand_timeout = 60", SERVICE);
    let (code, report, err) = fleet_json("deploy", &inv, &[]);
    assert_eq!(code, 0, "{report:#}\n{err}");
    for (name, machine) in [("x86", "x86_64"), ("arm64", "aarch64")] {
        let node = fleet.nodes.iter().find(|n| n.name == name).expect("node");
        assert_eq!(report_host(&report, name)["services"]["probe"]["result"], "installed", "{report:#}");
        // the forbidden call fails inside the service
        let out = probe_output(node, "denied");
        assert!(out.contains("denied") && !out.contains("allowed"), "{name} ({machine}): {out}");
        let filter = std::fs::read(art.join(format!("probe.{machine}.bpf"))).expect("artifact");
        assert_eq!(node.file("probe.bpf"), Some(filter.clone()));
        let _ = sha256(&filter);
    }
    // status: the running program is the deployed artifact, byte for byte
    let (code, st) = status(&inv);
    assert_eq!(code, 0, "{st:#}");
    for name in ["x86", "arm64"] {
        let probe = &report_host(&st, name)["services"]["probe"];
        assert_eq!(probe["verdict"], "in-sync", "{probe:#}");
        assert_eq!(probe["enforcement"]["state"], "enforced", "{name}: {probe:#}");
        assert_eq!(probe["enforcement"]["processes"][0]["matches"], true, "{name}: {probe:#}");
        assert_eq!(probe["enforcement"]["processes"][0]["seccomp_mode"], 2);
    }
    let (_, table, _) = scpc(&["status", inv.to_str().expect("utf-8")]);
    assert!(table.contains("enforced (pid") && table.contains("byte for byte"), "{table}");
    // a hand edit of the file: drift (the service still runs what was deployed)
    for node in &fleet.nodes {
        let (code, out) = node.run(&format!("printf '\\377' | dd of={EDGE}/probe.bpf bs=1 seek=2 conv=notrunc 2>&1"));
        assert_eq!(code, 0, "{out}");
    }
    let (code, st) = status(&inv);
    assert_eq!(code, 2, "{st:#}");
    for name in ["x86", "arm64"] {
        let probe = &report_host(&st, name)["services"]["probe"];
        assert_eq!(probe["verdict"], "drift", "{probe:#}");
        assert_eq!(probe["enforcement"]["state"], "enforced", "{name}: {probe:#}");
    }
    // a restart without the filter: not enforced, and the call goes through again
    for node in &fleet.nodes {
        let (code, out) = node.run(UNFILTERED);
        assert_eq!(code, 0, "{out}");
    }
    let (code, st) = status(&inv);
    assert_eq!(code, 2, "{st:#}");
    for (name, machine) in [("x86", "x86_64"), ("arm64", "aarch64")] {
        let probe = &report_host(&st, name)["services"]["probe"];
        assert_eq!(probe["enforcement"]["state"], "not-enforced", "{name}: {probe:#}");
        assert_eq!(probe["enforcement"]["processes"][0]["seccomp_mode"], 0);
        let node = fleet.nodes.iter().find(|n| n.name == name).expect("node");
        let out = probe_output(node, "allowed");
        assert!(out.contains("allowed"), "{name} ({machine}): {out}");
    }
}
