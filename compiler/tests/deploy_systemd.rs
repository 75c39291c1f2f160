//! `kind = "systemd"` against a real systemd: a Debian root booted with `systemd-nspawn -b`
//! (`testbed/systemd/build.sh`), its sshd and a real unit, `edge-probe.service`, a loop that
//! calls uname(2). The node program's drop-in starts the unit's command under `scpc-node run`,
//! the unit restarts under the filter (the call fails in it), `status` finds the unit's
//! processes through its control group and compares their filter byte for byte; a service that
//! leaves the inventory and a rollback past the first version take the drop-in away again.

mod testbed;

use testbed::support::{need, scpc, Need, TEST_BED};
use testbed::{build_policy, fleet_json, report_host, Fleet};

const SYSTEMD: &str = "[[service]]\nname = \"probe\"\npolicy = \"probe\"\npath = \"/srv/edge/probe.bpf\"\nkind = \"systemd\"\nunit = \"edge-probe.service\"\n";
const OTHER: &str = "[[service]]\nname = \"other\"\npolicy = \"probe\"\npath = \"/srv/edge/other.bpf\"\n";
const DROP_IN: &str = "/etc/systemd/system/edge-probe.service.d/zz-scpc.conf";

/// What the unit wrote last, once it says `want` (or after 10 s, whatever it says). The unit
/// truncates its file before each write, so the file is read once per try and that one reading
/// is both checked and returned (a `grep` then a `cat` could see the line, then an empty file).
fn probe_output(node: &testbed::Node, want: &str) -> String {
    let (_, out) = node.run(&format!(
        "for i in $(seq 50); do o=$(cat /run/edge-probe.out); case \"$o\" in *'{want}'*) break;; esac; sleep 0.2; done; printf '%s\\n' \"$o\""
    ));
    out
}

/// That the unit runs under the filter (its uname call fails) and that `status` on `inv` says
/// so: `enforced`, every process of the unit under the deployed program byte for byte.
fn assert_enforced(node: &testbed::Node, inv: &std::path::Path) {
    let out = probe_output(node, "Operation not permitted");
    assert!(out.contains("Operation not permitted") && !out.contains("x86_64"), "the unit runs under the filter: {out}");
    let (code, out, _) = scpc(&["status", inv.to_str().expect("utf-8"), "--json"]);
    let st: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(code, 0, "{st:#}");
    let probe = &report_host(&st, "sd")["services"]["probe"];
    assert_eq!(probe["enforcement"]["state"], "enforced", "{probe:#}");
    let processes = probe["enforcement"]["processes"].as_array().expect("processes");
    assert!(!processes.is_empty() && processes.iter().all(|p| p["matches"] == true), "{probe:#}");
}

#[test]
fn a_systemd_unit_runs_under_its_filter_and_leaves_it_with_its_drop_in() {
    need(&TEST_BED);
    need(&[Need::Program("systemd-nspawn"), Need::Program("debootstrap")]);
    let mut fleet = Fleet::new("systemd");
    fleet.add_systemd("sd");
    fleet.known_hosts();
    let node = &fleet.nodes[0];
    let (_, pid1) = node.run("cat /proc/1/comm; systemctl is-active edge-probe.service");
    assert!(pid1.starts_with("systemd\n") && pid1.lines().nth(1) == Some("active"), "a real systemd runs the unit: {pid1}");
    assert!(probe_output(node, "x86_64").contains("x86_64"), "unfiltered before");
    let art = build_policy(&fleet, "probe.scp", "probe", "probe");
    let inv = fleet.inventory(&art, "", SYSTEMD);
    let (code, report, err) = fleet_json("deploy", &inv, &[]);
    assert_eq!(code, 0, "{report:#}\n{err}");
    assert_eq!(report_host(&report, "sd")["services"]["probe"]["result"], "installed");
    let (_, drop_in) = node.run(&format!("cat {DROP_IN}"));
    assert!(drop_in.contains("ExecStart=/var/lib/scpc/scpc-node run /srv/edge/probe.bpf -- /bin/sh -c 'while"), "{drop_in}");
    assert_enforced(node, &inv);
    // the service leaves the inventory: its drop-in goes, the unit runs as before
    let (code, report, _) = fleet_json("deploy", &fleet.inventory(&art, "", OTHER), &[]);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report_host(&report, "sd")["services"]["(edge-probe.service)"]["result"], "unwrapped", "{report:#}");
    let (code, _) = node.run(&format!("test -e {DROP_IN}"));
    assert_ne!(code, 0, "the drop-in is gone");
    assert!(probe_output(node, "x86_64").contains("x86_64"), "the unit runs without the filter");
    // back in, then rolled back past its first version: filter and drop-in removed
    let inv = fleet.inventory(&art, "", SYSTEMD);
    let (code, report, _) = fleet_json("deploy", &inv, &[]);
    assert_eq!(code, 0, "{report:#}");
    let out = probe_output(node, "Operation not permitted");
    let (_, units) = node.run(&format!("cat {DROP_IN}; systemctl status edge-probe.service | head -20"));
    assert!(out.contains("Operation not permitted"), "{out}\n{report:#}\n{units}");
    let (code, report, _) = fleet_json("rollback", &inv, &[]);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report_host(&report, "sd")["services"]["probe"]["result"], "removed", "{report:#}");
    let (code, _) = node.run(&format!("test -e {DROP_IN} || test -e /srv/edge/probe.bpf"));
    assert_ne!(code, 0, "neither drop-in nor filter is left");
    assert!(probe_output(node, "x86_64").contains("x86_64"), "the unit runs as it did before scpc");
    // an install path with characters a unit file treats specially (`%h` is a specifier, the
    // home directory, unless written `%%h`): the drop-in names the file as it is
    let odd = SYSTEMD.replace("/srv/edge/probe.bpf", "/srv/edge/probe%h@v:1.bpf");
    let inv = fleet.inventory(&art, "", &odd);
    let (code, report, _) = fleet_json("deploy", &inv, &[]);
    assert_eq!(code, 0, "{report:#}");
    let (_, drop_in) = node.run(&format!("cat {DROP_IN}; systemctl show --property=ExecStart --value edge-probe.service"));
    assert!(drop_in.contains("ExecStart=/var/lib/scpc/scpc-node run /srv/edge/probe%%h@v:1.bpf -- "), "{drop_in}");
    assert!(drop_in.contains("argv[]=/var/lib/scpc/scpc-node run /srv/edge/probe%h@v:1.bpf -- "), "systemd reads it back: {drop_in}");
    assert_enforced(node, &inv);
    println!("systemd node booted in {:.1?}", node.boot.expect("boot time"));
}
