//! Hosts reached only through jump hosts (`proxy_jump`): real OpenSSH bastions in their own
//! network namespaces, nodes whose namespaces have no route to this machine, deploy, status and
//! rollback through chains of one and two hops, and a changed key at a hop refused.

mod testbed;

use std::path::{Path, PathBuf};
use std::process::Command;
use testbed::support::{need, TEST_BED};
use testbed::{build_policy, fleet_json, report_host, Fleet, Spec, EDGE};

const SERVICE: &str = "[[service]]\nname = \"edge\"\npolicy = \"fleet\"\npath = \"/srv/edge/fleet.bpf\"\n";

/// bastion `b1` (reached from here), bastion `b2` behind it, `far` behind `b2` (two hops) and
/// `near` behind `b1` (one hop).
fn plant(tag: &str) -> Fleet {
    let mut fleet = Fleet::new(tag);
    fleet.add("b1", Spec { netns: true, ..Spec::default() });
    let b1 = fleet.nodes[0].netns.clone();
    fleet.add("b2", Spec { netns: true, behind: b1.clone(), ..Spec::default() });
    let b2 = fleet.nodes[1].netns.clone();
    fleet.add("far", Spec { netns: true, behind: b2, ..Spec::default() });
    fleet.add("near", Spec { netns: true, behind: b1, ..Spec::default() });
    fleet
}

/// The inventory: the bastions as `[[jump]]`s, `far` through its group's jump host (`b2`, which
/// is itself behind `b1`), `near` through its own.
fn inventory(fleet: &Fleet, artifacts: &Path, known_hosts: &Path) -> PathBuf {
    let [b1, b2, far, near] = [0, 1, 2, 3].map(|i| &fleet.nodes[i]);
    let text = format!(
        "artifacts = \"{art}\"\ninstall_root = \"{EDGE}\"\nnode_programs = \"{np}\"\n\n\
         [rollout]\ncanary = 0\nmax_failures = 10\n\n\
         [defaults]\nuser = \"root\"\nidentity = \"{key}\"\nknown_hosts = \"{kh}\"\n\n\
         [[jump]]\nname = \"b1\"\naddress = \"{}\"\n\n\
         [[jump]]\nname = \"b2\"\naddress = \"{}\"\nproxy_jump = \"b1\"\n\n\
         [group.plant]\nproxy_jump = \"b2\"\n\n\
         [[host]]\nname = \"far\"\naddress = \"{}\"\ngroups = [\"plant\"]\n\n\
         [[host]]\nname = \"near\"\naddress = \"{}\"\nproxy_jump = \"b1\"\n\n{SERVICE}",
        b1.address,
        b2.address,
        far.address,
        near.address,
        art = artifacts.display(),
        np = testbed::node_programs().display(),
        key = fleet.key.display(),
        kh = known_hosts.display(),
    );
    let path = fleet.root.join(format!("inventory-{}.toml", artifacts.file_name().and_then(|n| n.to_str()).unwrap_or("x")));
    std::fs::write(&path, text).expect("inventory");
    path
}

fn bpf(dir: &Path) -> Vec<u8> {
    std::fs::read(dir.join("fleet.x86_64.bpf")).expect("artifact")
}

#[test]
fn hosts_behind_one_and_two_jump_hosts_are_deployed_checked_and_rolled_back() {
    need(&TEST_BED);
    let fleet = plant("jump");
    let (far, near) = (&fleet.nodes[2], &fleet.nodes[3]);
    // neither hidden node is reachable from here, and neither has a route back
    for n in [far, near] {
        // this machine's route to it is its default route, over none of the test bed's links
        let route = testbed::sh(&format!("ip route get {}", n.address));
        assert!(!route.contains("scpc"), "{} is reachable directly: {route}", n.name);
        let ns = n.netns.as_deref().expect("netns");
        let routes = testbed::sh(&format!("ip -n {ns} route show"));
        assert_eq!(routes.lines().count(), 1, "{} has only its link to the bastion: {routes}", n.name);
        // this machine's end of b1's link
        let here = format!("{}.1", fleet.nodes[0].address.rsplit_once('.').expect("an IPv4 address").0);
        let back = Command::new("ip").args(["-n", ns, "route", "get", &here]).output().expect("ip");
        assert!(!back.status.success(), "{} has a route to this machine", n.name);
    }
    let kh = fleet.known_hosts();
    let v1 = build_policy(&fleet, "fleet.scp", "fleet", "v1");
    let v2 = build_policy(&fleet, "fleet-v2.scp", "fleet", "v2");
    assert_ne!(bpf(&v1), bpf(&v2));
    let inv1 = inventory(&fleet, &v1, &kh);
    let (code, report, err) = fleet_json("deploy", &inv1, &[]);
    assert_eq!(code, 0, "{report:#}\n{err}");
    for n in [far, near] {
        assert_eq!(n.file("fleet.bpf"), Some(bpf(&v1)), "{} holds v1", n.name);
    }
    assert!(fleet.nodes[0].file("fleet.bpf").is_none() && fleet.nodes[1].file("fleet.bpf").is_none(), "the bastions are not deployed to");
    let inv2 = inventory(&fleet, &v2, &kh);
    assert_eq!(fleet_json("deploy", &inv2, &[]).0, 0);
    let (code, report, err) = fleet_json("status", &inv2, &[]);
    assert_eq!(code, 0, "{report:#}\n{err}");
    for n in ["far", "near"] {
        assert_eq!(report_host(&report, n)["services"]["edge"]["verdict"], "in-sync", "{report:#}");
    }
    let (code, report, err) = fleet_json("rollback", &inv2, &["--host", "far"]);
    assert_eq!(code, 0, "{report:#}\n{err}");
    assert_eq!(far.file("fleet.bpf"), Some(bpf(&v1)), "far rolled back through two hops");
    assert_eq!(near.file("fleet.bpf"), Some(bpf(&v2)), "near untouched");
    let (code, report, _) = fleet_json("status", &inv2, &[]);
    assert_eq!(code, 2);
    assert_eq!(report_host(&report, "far")["services"]["edge"]["verdict"], "outdated", "{report:#}");
}

#[test]
fn a_changed_key_at_any_hop_is_refused_and_nothing_is_written() {
    need(&TEST_BED);
    let fleet = plant("jump-keys");
    fleet.known_hosts();
    let v1 = build_policy(&fleet, "fleet.scp", "fleet", "v1");
    let name = |i: usize| scpc_deploy::known_hosts::host_name(&fleet.nodes[i].address, fleet.nodes[i].port);
    let good: Vec<String> =
        fleet.nodes.iter().map(|n| format!("{} {}\n", scpc_deploy::known_hosts::host_name(&n.address, n.port), n.host_key)).collect();
    // the key recorded for the bastion at hop `i` is another node's
    for (hop, wrong_key_of) in [(0, 3), (1, 2)] {
        let mut lines = good.clone();
        lines[hop] = format!("{} {}\n", name(hop), fleet.nodes[wrong_key_of].host_key);
        let kh = fleet.root.join(format!("known_hosts-wrong-{hop}"));
        std::fs::write(&kh, lines.concat()).expect("known_hosts");
        let inv = inventory(&fleet, &v1, &kh);
        let (code, report, err) = fleet_json("deploy", &inv, &["--accept-new"]);
        assert_eq!(code, 2, "{report:#}\n{err}");
        // `far` goes through both hops; `near` only through the first
        let refused: Vec<&str> = if hop == 0 { vec!["far", "near"] } else { vec!["far"] };
        for host in &refused {
            let e = report_host(&report, host)["error"].as_str().unwrap_or_default().to_string();
            assert!(e.contains(&format!("jump host {}", name(hop))) && e.contains("CHANGED"), "{host}: {e}");
        }
        for n in &fleet.nodes[2..] {
            if refused.contains(&n.name.as_str()) {
                assert!(n.file("fleet.bpf").is_none(), "{} was written through a bastion with a changed key", n.name);
            }
        }
        assert_eq!(std::fs::read_to_string(&kh).expect("known_hosts"), lines.concat(), "--accept-new never records over a changed key");
    }
    // an unknown bastion is refused without --accept-new, and recorded with it
    let kh = fleet.root.join("known_hosts-no-b1");
    std::fs::write(&kh, good[1..].concat()).expect("known_hosts");
    let inv = inventory(&fleet, &v1, &kh);
    let (code, report, _) = fleet_json("deploy", &inv, &[]);
    assert_eq!(code, 2);
    assert!(report_host(&report, "near")["error"].as_str().unwrap_or_default().contains("is unknown"), "{report:#}");
    let (code, report, err) = fleet_json("deploy", &inv, &["--accept-new"]);
    assert_eq!(code, 0, "{report:#}\n{err}");
    let recorded = std::fs::read_to_string(&kh).expect("known_hosts");
    assert!(
        recorded.lines().any(|l| l == format!("{} {}", name(0), fleet.nodes[0].host_key)),
        "b1 ({} {}) recorded:\n{recorded}\n{report:#}\n{err}",
        name(0),
        fleet.nodes[0].host_key
    );
}

/// One YAML inventory for both: the hidden node's `ProxyJump` in `ansible_ssh_common_args`
/// (with `-F` naming an ssh_config for OpenSSH's own jump connection, which scpc ignores).
#[test]
fn one_ansible_inventory_drives_scpc_and_ansible_through_the_bastions() {
    need(&TEST_BED);
    let ansible = Command::new("ansible").arg("--version").output();
    assert!(ansible.is_ok_and(|o| o.status.success()), "ansible is missing: .ci/run installs Debian's ansible-core");
    let fleet = plant("jump-ansible");
    let kh = fleet.known_hosts();
    let v1 = build_policy(&fleet, "fleet.scp", "fleet", "v1");
    let [b1, b2, far, near] = [0, 1, 2, 3].map(|i| &fleet.nodes[i]);
    let ssh_config = fleet.ssh_config(&kh);
    let hosts = fleet.root.join("hosts.yml");
    std::fs::write(
        &hosts,
        format!(
            "all:\n  vars:\n    ansible_user: root\n    ansible_ssh_private_key_file: {key}\n    ansible_ssh_common_args: -F {cfg}\n  children:\n    \
             plant:\n      vars:\n        ansible_ssh_common_args: -F {cfg} -o ProxyJump=root@{b1},root@{b2}\n      hosts:\n        \
             far: {{ansible_host: {far}}}\n    dmz:\n      vars:\n        ansible_ssh_common_args: -F {cfg} -J {b1}\n      hosts:\n        \
             near: {{ansible_host: {near}, scpc_canary: true}}\n",
            key = fleet.key.display(),
            cfg = ssh_config.display(),
            b1 = b1.address,
            b2 = b2.address,
            far = far.address,
            near = near.address,
        ),
    )
    .expect("hosts.yml");
    let settings = fleet.root.join("scpc.toml");
    std::fs::write(
        &settings,
        format!(
            "ansible_inventory = \"hosts.yml\"\nartifacts = \"{}\"\ninstall_root = \"{EDGE}\"\nnode_programs = \"{}\"\n\n\
             [defaults]\nknown_hosts = \"known_hosts\"\n\n{SERVICE}hosts = [\"plant\", \"dmz\"]\n",
            v1.display(),
            testbed::node_programs().display()
        ),
    )
    .expect("scpc.toml");
    let (code, report, err) = fleet_json("deploy", &settings, &[]);
    assert_eq!(code, 0, "{report:#}\n{err}");
    assert_eq!(report_host(&report, "near")["canary"], true, "scpc_canary read: {report:#}");
    for n in [far, near] {
        assert_eq!(n.file("fleet.bpf"), Some(bpf(&v1)), "{} deployed through the inventory's ProxyJump", n.name);
    }
    // Ansible reads the same file, reaches the same hosts through the same bastions, and sees
    // the bytes scpc installed
    let out = Command::new("ansible")
        .args(["all", "-i", hosts.to_str().expect("utf-8"), "-m", "raw", "-a", &format!("sha256sum {EDGE}/fleet.bpf")])
        .env("ANSIBLE_HOST_KEY_CHECKING", "True")
        .env("ANSIBLE_NOCOLOR", "1")
        .output()
        .expect("ansible runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    let digest = testbed::sha256(&bpf(&v1));
    for n in ["far", "near"] {
        assert!(text.contains(&format!("{n} | CHANGED")), "{text}");
    }
    assert_eq!(text.matches(digest.trim_start_matches("sha256:")).count(), 2, "both hosts hold scpc's bytes: {text}");
    // status and rollback through the same file
    let (code, report, err) = fleet_json("status", &settings, &[]);
    assert_eq!(code, 0, "{report:#}\n{err}");
    let v2 = build_policy(&fleet, "fleet-v2.scp", "fleet", "v2");
    let text = std::fs::read_to_string(&settings).expect("settings").replace(v1.to_str().expect("utf-8"), v2.to_str().expect("utf-8"));
    std::fs::write(&settings, text).expect("settings");
    assert_eq!(fleet_json("deploy", &settings, &[]).0, 0);
    assert_eq!(far.file("fleet.bpf"), Some(bpf(&v2)));
    let (code, report, err) = fleet_json("rollback", &settings, &["--host", "far"]);
    assert_eq!(code, 0, "{report:#}\n{err}");
    assert_eq!(far.file("fleet.bpf"), Some(bpf(&v1)), "rolled back through the Ansible inventory's two hops");
}
