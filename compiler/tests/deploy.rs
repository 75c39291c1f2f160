//! `scpc deploy`, `status` and `rollback` against a fleet of real OpenSSH servers started by
//! the tests (see `testbed/mod.rs`). Every check looks at the nodes' own files.

mod testbed;

use std::path::{Path, PathBuf};
use testbed::support::{need, TEST_BED};
use testbed::{scpc, sha256, Fleet, Server, Spec, EDGE};

fn manifest_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Builds `tests/deploy/FILE` (policy `fleet`) into a fresh directory under the fleet's root.
fn build(fleet: &Fleet, file: &str, out: &str) -> PathBuf {
    testbed::build_policy(fleet, file, "fleet", out)
}

fn artifact(dir: &Path, arch: &str) -> Vec<u8> {
    std::fs::read(dir.join(format!("fleet.{arch}.bpf"))).expect("artifact")
}

const SERVICE: &str = "[[service]]\nname = \"edge\"\npolicy = \"fleet\"\npath = \"/srv/edge/fleet.bpf\"\n";

fn deploy(inv: &Path, extra: &[&str]) -> (i32, serde_json::Value, String) {
    testbed::fleet_json("deploy", inv, extra)
}

use testbed::report_host as host;

#[test]
fn ten_hosts_of_mixed_architectures_each_get_their_own_artifact() {
    need(&TEST_BED);
    let mut fleet = Fleet::new("mixed");
    let machines = ["x86_64", "x86_64", "x86_64", "aarch64", "aarch64", "armv7l", "armv6l", "i686", "riscv64", "aarch64"];
    for (i, m) in machines.iter().enumerate() {
        // the last one is a dropbear box, as ARM gateways often are
        let server = if i == 9 { Server::Dropbear } else { Server::OpenSsh };
        fleet.add(&format!("n{i}"), Spec { machine: Some(m.to_string()), kernel: Some("6.1.0-56".into()), server, ..Spec::default() });
    }
    fleet.add("old-kernel", Spec { machine: Some("aarch64".into()), kernel: Some("4.19.0-27-arm64".into()), ..Spec::default() });
    fleet.add("mips", Spec { machine: Some("mips".into()), ..Spec::default() });
    fleet.known_hosts();
    let art = build(&fleet, "fleet.scp", "v1");
    let inv = fleet.inventory(&art, "canary = 1\nwave_size = 4\nconcurrency = 4\nmax_failures = 1", SERVICE);
    let (code, report, err) = deploy(&inv, &[]);
    assert_eq!(code, 2, "the mips host fails: {report:#}\n{err}");
    let arch_of = |m: &str| scpc_deploy::artifacts::arch_of_uname(m).expect("known");
    for (i, m) in machines.iter().enumerate() {
        let node = &fleet.nodes[i];
        let want = artifact(&art, arch_of(m));
        assert_eq!(node.file("fleet.bpf").as_deref(), Some(want.as_slice()), "{} ({m})", node.name);
        let state: serde_json::Value = serde_json::from_slice(&node.file(".scpc/fleet.bpf/state.json").expect("state file")).expect("json");
        assert_eq!(state["history"][0]["sha256"], sha256(&want));
        assert_eq!(state["history"][0]["operator"], "ci");
        assert_eq!(state["history"][0]["arch"], arch_of(m));
        assert_eq!(host(&report, &node.name)["services"]["edge"]["result"], "installed");
        // no temporary file left beside the target
        let leftovers: Vec<_> =
            std::fs::read_dir(&node.dir).expect("dir").flatten().filter(|e| e.file_name().to_string_lossy().contains("scpc-tmp")).collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }
    let old = host(&report, "old-kernel");
    assert!(old["warnings"][0].as_str().expect("a warning").contains("older than policy `fleet` needs (5.4)"), "{old:#}");
    let mips = host(&report, "mips");
    assert!(mips["error"].as_str().expect("refused").contains("unknown architecture `mips`"), "{mips:#}");
    assert!(fleet.nodes[11].file("fleet.bpf").is_none(), "nothing written to the refused host");
    // the canary went first, alone
    assert_eq!(report["hosts"][0]["canary"], true);
    assert_eq!(report["hosts"][0]["host"], "n0");
    // a second deploy changes nothing
    let (_, again, _) = deploy(&inv, &["--host", "n3", "--host", "n8"]);
    assert_eq!(again["hosts"].as_array().expect("hosts").len(), 2);
    assert_eq!(host(&again, "n3")["services"]["edge"]["result"], "unchanged");
}

#[test]
fn a_host_without_an_artifact_for_its_architecture_is_refused() {
    need(&TEST_BED);
    let mut fleet = Fleet::new("noart");
    fleet.add("arm-only", Spec { machine: Some("armv7l".into()), ..Spec::default() });
    fleet.known_hosts();
    let dir = fleet.root.join("x86only");
    let src = manifest_root().join("tests/deploy/fleet.scp");
    let (code, _, err) =
        scpc(&["build", src.to_str().expect("utf-8"), "--policy", "fleet", "--target", "x86_64", "-o", dir.to_str().expect("utf-8")]);
    assert_eq!(code, 0, "{err}");
    let inv = fleet.inventory(&dir, "", SERVICE);
    let (code, report, _) = deploy(&inv, &[]);
    assert_eq!(code, 2);
    let e = host(&report, "arm-only")["error"].as_str().expect("refused").to_string();
    assert!(e.contains("no artifact for arm (built for x86_64)"), "{e}");
    assert!(fleet.nodes[0].file("fleet.bpf").is_none());
}

#[test]
fn a_failing_canary_stops_the_rollout_before_any_other_host_changes() {
    need(&TEST_BED);
    let mut fleet = Fleet::new("canary");
    for i in 0..5 {
        fleet.add(&format!("c{i}"), Spec::default());
    }
    fleet.known_hosts();
    let v1 = build(&fleet, "fleet.scp", "v1");
    let v2 = build(&fleet, "fleet-v2.scp", "v2");
    let service = format!("{SERVICE}health = \"test ! -e {EDGE}/sick\"\n");
    let inv = fleet.inventory(&v1, "canary = 1\nwave_size = 2\nconcurrency = 2", &service);
    let (code, _, err) = deploy(&inv, &[]);
    assert_eq!(code, 0, "{err}");
    let x1 = artifact(&v1, "x86_64");
    let mtimes: Vec<_> =
        fleet.nodes.iter().map(|n| std::fs::metadata(n.dir.join("fleet.bpf")).expect("installed").modified().expect("mtime")).collect();
    // v2: the canary's health check fails
    std::fs::write(fleet.nodes[0].dir.join("sick"), "").expect("sick");
    let inv = fleet.inventory(&v2, "canary = 1\nwave_size = 2\nconcurrency = 2\nmax_failures = 3", &service);
    let (code, report, _) = deploy(&inv, &[]);
    assert_eq!(code, 2);
    assert!(report["stopped"].as_str().expect("stopped").contains("a canary failed"), "{report:#}");
    let canary = host(&report, "c0");
    assert_eq!(canary["services"]["edge"]["result"], "rolled_back", "{canary:#}");
    assert_eq!(fleet.nodes[0].file("fleet.bpf"), Some(x1.clone()), "the canary holds v1 again");
    for (i, n) in fleet.nodes.iter().enumerate().skip(1) {
        assert_eq!(host(&report, &n.name)["skipped"], true);
        assert_eq!(n.file("fleet.bpf"), Some(x1.clone()), "{} untouched", n.name);
        assert_eq!(
            std::fs::metadata(n.dir.join("fleet.bpf")).expect("file").modified().expect("mtime"),
            mtimes[i],
            "{} not rewritten",
            n.name
        );
    }
}

#[test]
fn changed_and_unknown_host_keys_are_refused() {
    need(&TEST_BED);
    let mut fleet = Fleet::new("keys");
    fleet.add("good", Spec::default());
    fleet.add("changed", Spec::default());
    fleet.add("unknown", Spec::default());
    let kh = fleet.known_hosts();
    // `changed` is recorded with another key; `unknown` not at all
    let other = fleet.root.join("other");
    testbed::sh(&format!("ssh-keygen -q -t ed25519 -N '' -f {}", other.display()));
    let other_key: String =
        std::fs::read_to_string(format!("{}.pub", other.display())).expect("pub").split_whitespace().take(2).collect::<Vec<_>>().join(" ");
    let lines: Vec<String> = std::fs::read_to_string(&kh)
        .expect("kh")
        .lines()
        .enumerate()
        .filter(|(i, _)| *i != 2)
        .map(|(i, l)| if i == 1 { format!("{} {other_key}", l.split_whitespace().next().expect("host")) } else { l.to_string() })
        .collect();
    std::fs::write(&kh, lines.join("\n") + "\n").expect("kh");
    let art = build(&fleet, "fleet.scp", "v1");
    let inv = fleet.inventory(&art, "canary = 0\nmax_failures = 5", SERVICE);
    let (code, report, _) = deploy(&inv, &[]);
    assert_eq!(code, 2);
    assert!(fleet.nodes[0].file("fleet.bpf").is_some());
    let changed = host(&report, "changed")["error"].as_str().expect("refused").to_string();
    assert!(changed.contains("has CHANGED") && changed.contains("SHA256:"), "{changed}");
    let unknown = host(&report, "unknown")["error"].as_str().expect("refused").to_string();
    assert!(unknown.contains("is unknown") && unknown.contains("--accept-new") && unknown.contains("SHA256:"), "{unknown}");
    for n in &fleet.nodes[1..] {
        assert_eq!(std::fs::read_dir(&n.dir).expect("dir").count(), 0, "nothing written to {}", n.name);
    }
    // --accept-new records the unknown key, never the changed one
    let (code, report, _) = deploy(&inv, &["--accept-new"]);
    assert_eq!(code, 2);
    assert_eq!(host(&report, "unknown")["services"]["edge"]["result"], "installed");
    assert!(host(&report, "changed")["error"].as_str().expect("still refused").contains("has CHANGED"));
    assert!(fleet.nodes[1].file("fleet.bpf").is_none());
    let recorded = std::fs::read_to_string(&kh).expect("kh");
    assert!(recorded.contains(&fleet.nodes[2].host_key), "{recorded}");
    assert!(!recorded.contains(&fleet.nodes[1].host_key), "{recorded}");
}

#[test]
fn rollback_restores_the_previous_bytes_and_status_sees_drift() {
    need(&TEST_BED);
    let mut fleet = Fleet::new("rollback");
    for i in 0..3 {
        fleet.add(&format!("r{i}"), Spec::default());
    }
    fleet.known_hosts();
    let v1 = build(&fleet, "fleet.scp", "v1");
    let v2 = build(&fleet, "fleet-v2.scp", "v2");
    let (x1, x2) = (artifact(&v1, "x86_64"), artifact(&v2, "x86_64"));
    assert_ne!(x1, x2);
    let inv1 = fleet.inventory(&v1, "", SERVICE);
    assert_eq!(deploy(&inv1, &[]).0, 0);
    let inv2 = fleet.inventory(&v2, "", SERVICE);
    // dry run: says what changes and how, writes nothing
    let (code, out, err) = scpc(&["deploy", inv2.to_str().expect("utf-8"), "--dry-run"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("would install") && out.contains("socket") && out.contains("errno(13)"), "{out}");
    assert!(fleet.nodes.iter().all(|n| n.file("fleet.bpf") == Some(x1.clone())));
    assert_eq!(deploy(&inv2, &[]).0, 0);
    assert!(fleet.nodes.iter().all(|n| n.file("fleet.bpf") == Some(x2.clone())));
    // status: all in sync
    let (code, out, err) = scpc(&["status", inv2.to_str().expect("utf-8")]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("3 in sync"), "{out}");
    // roll one host back
    let (code, out, err) = scpc(&["rollback", inv2.to_str().expect("utf-8"), "--host", "r1"]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert_eq!(fleet.nodes[1].file("fleet.bpf"), Some(x1.clone()), "previous bytes restored");
    assert_eq!(fleet.nodes[0].file("fleet.bpf"), Some(x2.clone()), "other hosts untouched");
    // a hand edit on r2
    let mut edited = x2.clone();
    edited[8] ^= 1;
    std::fs::write(fleet.nodes[2].dir.join("fleet.bpf"), &edited).expect("edit");
    let (code, out, _) = scpc(&["status", inv2.to_str().expect("utf-8"), "--json"]);
    assert_eq!(code, 2);
    let report: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(host(&report, "r0")["services"]["edge"]["verdict"], "in-sync");
    assert_eq!(host(&report, "r1")["services"]["edge"]["verdict"], "outdated");
    let r2 = &host(&report, "r2")["services"]["edge"];
    assert_eq!(r2["verdict"], "drift");
    assert_eq!(r2["actual"], sha256(&edited));
    assert_eq!(r2["recorded"], sha256(&x2));
    // deploying again repairs the drift
    assert_eq!(deploy(&inv2, &[]).0, 0);
    assert_eq!(fleet.nodes[2].file("fleet.bpf"), Some(x2.clone()));
    assert_eq!(fleet.nodes[1].file("fleet.bpf"), Some(x2));
}

#[test]
fn a_dropbear_node_with_its_small_window_takes_a_filter_larger_than_the_window() {
    need(&TEST_BED);
    let mut fleet = Fleet::new("dropbear");
    fleet.add("gw", Spec { server: Server::Dropbear, ..Spec::default() });
    fleet.known_hosts();
    let big = build(&fleet, "fleet-big.scp", "big");
    let small = build(&fleet, "fleet.scp", "small");
    let (xb, xs) = (artifact(&big, "x86_64"), artifact(&small, "x86_64"));
    // dropbear's default channel window is 24 KiB: the first SFTP write of a larger file gets 0
    assert!(xb.len() > 24 * 1024, "{} bytes", xb.len());
    let banner = fleet.nodes[0].run("echo $SSH_CONNECTION");
    assert_eq!(banner.0, 0, "{banner:?}");
    let (code, report, err) = deploy(&fleet.inventory(&big, "", SERVICE), &[]);
    let log = std::fs::read_to_string(fleet.nodes[0].home.join("sshd.log")).unwrap_or_default();
    assert_eq!(code, 0, "{report:#}\n{err}\ndropbear's log:\n{log}");
    assert_eq!(fleet.nodes[0].file("fleet.bpf"), Some(xb.clone()));
    assert_eq!(deploy(&fleet.inventory(&small, "", SERVICE), &[]).0, 0);
    assert_eq!(fleet.nodes[0].file("fleet.bpf"), Some(xs));
    let inv = fleet.inventory(&small, "", SERVICE);
    let (code, out, err) = scpc(&["rollback", inv.to_str().expect("utf-8")]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert_eq!(fleet.nodes[0].file("fleet.bpf"), Some(xb), "the big filter is back");
    let (code, out, _) = scpc(&["status", inv.to_str().expect("utf-8"), "--json"]);
    let report: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(code, 2, "{report:#}");
    assert_eq!(host(&report, "gw")["services"]["edge"]["verdict"], "outdated");
    // the server really is dropbear
    let log = std::fs::read_to_string(fleet.nodes[0].home.join("sshd.log")).expect("log");
    assert!(log.contains("Pubkey auth succeeded for 'root'"), "{log}");
}

#[test]
fn hosts_without_an_sftp_server_get_files_over_a_command() {
    need(&TEST_BED);
    let mut fleet = Fleet::new("nosftp");
    fleet.add("openwrt", Spec { server: Server::Dropbear, no_sftp: true, ..Spec::default() });
    fleet.add("minimal", Spec { no_sftp: true, ..Spec::default() });
    fleet.known_hosts();
    // the nodes really have no SFTP
    let (code, out) = fleet.nodes[0].run("/usr/lib/sftp-server </dev/null");
    assert_ne!(code, 0, "{out}");
    let big = build(&fleet, "fleet-big.scp", "big");
    let small = build(&fleet, "fleet.scp", "small");
    let (xb, xs) = (artifact(&big, "x86_64"), artifact(&small, "x86_64"));
    let (code, report, err) = deploy(&fleet.inventory(&big, "", SERVICE), &[]);
    assert_eq!(code, 0, "{report:#}\n{err}");
    for n in &fleet.nodes {
        assert_eq!(n.file("fleet.bpf"), Some(xb.clone()), "{}", n.name);
        println!("{}: {:.2} s", n.name, host(&report, &n.name)["seconds"]);
    }
    // the dry run reads the deployed filter back to show the difference
    let inv = fleet.inventory(&small, "", SERVICE);
    let (code, out, err) = scpc(&["deploy", inv.to_str().expect("utf-8"), "--dry-run"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("would install") && !out.contains("cannot read") && !out.contains("no filter installed"), "{out}");
    assert_eq!(deploy(&inv, &[]).0, 0);
    let (code, out, err) = scpc(&["rollback", inv.to_str().expect("utf-8")]);
    assert_eq!(code, 0, "{out}\n{err}");
    for n in &fleet.nodes {
        assert_eq!(n.file("fleet.bpf"), Some(xb.clone()), "{} rolled back", n.name);
        let mode = std::fs::metadata(n.dir.join("fleet.bpf")).expect("file").permissions();
        assert_eq!(std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777, 0o644);
    }
    assert_ne!(xs, xb);
}

/// What `seccheck` (tests/testbed/arm64/seccheck.c) says on the node about `calls` under the
/// deployed filter.
fn seccheck(node: &testbed::Node, calls: &str) -> String {
    let (code, out) = node.run(&format!("seccheck {EDGE}/fleet.bpf {calls}"));
    assert_eq!(code, 0, "{out}");
    out
}

#[test]
fn the_aarch64_node_enforces_the_deployed_filter() {
    need(&TEST_BED);
    let mut fleet = Fleet::new("arm64");
    let n = fleet.add_arm64("pi");
    fleet.known_hosts();
    let node = &fleet.nodes[n];
    let (_, machine) = node.run("uname -m; uname -r");
    assert!(machine.starts_with("aarch64\n"), "{machine}");
    let v1 = build(&fleet, "fleet.scp", "v1");
    let v2 = build(&fleet, "fleet-v2.scp", "v2");
    let (code, report, err) = deploy(&fleet.inventory(&v1, "", SERVICE), &[]);
    assert_eq!(code, 0, "{report:#}\n{err}");
    assert_eq!(host(&report, "pi")["arch"], "aarch64", "{report:#}");
    let want = artifact(&v1, "aarch64");
    assert_eq!(node.file("fleet.bpf"), Some(want.clone()));
    let state: serde_json::Value = serde_json::from_slice(&node.file(".scpc/fleet.bpf/state.json").expect("state")).expect("json");
    assert_eq!(state["history"][0]["sha256"], sha256(&want));
    // the filter on a real arm64 kernel: allowed, errno(EPERM), and the default kill_process
    assert_eq!(seccheck(node, "write socket getpid"), "write allowed\nsocket errno 1\ngetpid killed by signal 31\n");
    // v2 answers socket with EACCES; rollback brings EPERM back
    let inv2 = fleet.inventory(&v2, "", SERVICE);
    assert_eq!(deploy(&inv2, &[]).0, 0);
    assert_eq!(seccheck(node, "socket write"), "socket errno 13\nwrite allowed\n");
    let (code, out, err) = scpc(&["rollback", inv2.to_str().expect("utf-8")]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert_eq!(node.file("fleet.bpf"), Some(want));
    assert_eq!(seccheck(node, "socket uname"), "socket errno 1\nuname killed by signal 31\n");
}

#[test]
fn ssh_agent_keys_log_in_and_an_empty_agent_is_refused() {
    need(&TEST_BED);
    let mut fleet = Fleet::new("agent");
    fleet.add("a", Spec::default());
    fleet.known_hosts();
    let v1 = build(&fleet, "fleet.scp", "v1");
    let inv = fleet.inventory(&v1, "", SERVICE);
    let text = std::fs::read_to_string(&inv).expect("inventory");
    let text = text.replace(&format!("identity = \"{}\"", fleet.key.display()), "agent = true");
    assert!(text.contains("agent = true"), "{text}");
    std::fs::write(&inv, text).expect("inventory");
    let sock = fleet.root.join("agent.sock");
    let mut agent = std::process::Command::new("ssh-agent")
        .arg("-D")
        .arg("-a")
        .arg(&sock)
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("ssh-agent");
    // ready once it accepts (the socket file appears at bind, before listen)
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while std::os::unix::net::UnixStream::connect(&sock).is_err() {
        assert!(std::time::Instant::now() < deadline, "ssh-agent never listened on {}", sock.display());
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let with_agent = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_scpc")).args(args).env("SSH_AUTH_SOCK", &sock).output().expect("scpc");
        (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned())
    };
    // no key in the agent yet: refused, nothing written
    let (code, out) = with_agent(&["deploy", inv.to_str().expect("utf-8"), "--json"]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("login as root refused"), "{out}");
    assert!(fleet.nodes[0].file("fleet.bpf").is_none());
    testbed::sh(&format!("SSH_AUTH_SOCK={} ssh-add -q {} 2>&1", sock.display(), fleet.key.display()));
    let (code, out) = with_agent(&["deploy", inv.to_str().expect("utf-8"), "--json"]);
    let _ = agent.kill();
    let _ = agent.wait();
    assert_eq!(code, 0, "{out}");
    assert_eq!(fleet.nodes[0].file("fleet.bpf"), Some(artifact(&v1, "x86_64")));
}

#[test]
fn several_services_per_host_and_a_directory_that_does_not_exist_yet() {
    need(&TEST_BED);
    let mut fleet = Fleet::new("twosvc");
    fleet.add("plc", Spec::default());
    fleet.known_hosts();
    let v1 = build(&fleet, "fleet.scp", "v1");
    let services = format!("{SERVICE}\n[[service]]\nname = \"deep\"\npolicy = \"fleet\"\npath = \"{EDGE}/a/b/fleet.bpf\"\n");
    let inv = fleet.inventory(&v1, "", &services);
    let (code, report, err) = deploy(&inv, &[]);
    assert_eq!(code, 0, "{report:#}\n{err}");
    let want = artifact(&v1, "x86_64");
    assert_eq!(fleet.nodes[0].file("fleet.bpf"), Some(want.clone()));
    assert_eq!(fleet.nodes[0].file("a/b/fleet.bpf"), Some(want.clone()));
    for state in [".scpc/fleet.bpf/state.json", "a/b/.scpc/fleet.bpf/state.json"] {
        let json: serde_json::Value = serde_json::from_slice(&fleet.nodes[0].file(state).expect(state)).expect("json");
        assert_eq!(json["history"][0]["sha256"], sha256(&want), "{state}");
    }
    // one survey reads both: a second run changes neither
    let (code, again, _) = deploy(&inv, &[]);
    assert_eq!(code, 0);
    assert_eq!(host(&again, "plc")["services"]["edge"]["result"], "unchanged", "{again:#}");
    assert_eq!(host(&again, "plc")["services"]["deep"]["result"], "unchanged", "{again:#}");
}

#[test]
fn an_inventory_mistake_is_located() {
    let dir = std::env::temp_dir().join(format!("scpc-inv-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let inv = dir.join("bad.toml");
    std::fs::write(
        &inv,
        "[defaults]\nidentity = \"k\"\nknown_hosts = \"kh\"\n\n[[host]]\nname = \"a\"\naddress = \"10.0.0.1\"\n\n[[service]]\nname = \"s\"\npolicy = \"p\"\npath = \"/etc/scpc/p.bpf\"\nhosts = [\"plant-b\"]\n",
    )
    .expect("write");
    let (code, out, err) = scpc(&["deploy", inv.to_str().expect("utf-8")]);
    assert_eq!(code, 1, "{out}");
    assert!(err.contains("no such host or group") && err.contains("bad.toml:13:10") && err.contains("help"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Waits until the node's node program has read more than a read request's worth of its
/// standard input: an install request (the filter inside it) is on its way.
fn wait_for_install_request(node: &testbed::Node, deadline: std::time::Duration) -> bool {
    let end = std::time::Instant::now() + deadline;
    while std::time::Instant::now() < end {
        if node.node_program_read() > 6000 {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    false
}

#[test]
fn hosts_killed_or_cut_off_mid_transfer_keep_their_previous_filter() {
    need(&TEST_BED);
    let mut fleet = Fleet::new("cut");
    fleet.add("killed", Spec { netns: true, ..Spec::default() });
    fleet.add("unplugged", Spec { netns: true, ..Spec::default() });
    fleet.add("flapping", Spec { netns: true, ..Spec::default() });
    fleet.add("fine", Spec::default());
    fleet.add("reset", Spec { netns: true, ..Spec::default() });
    fleet.known_hosts();
    let v1 = build(&fleet, "fleet.scp", "v1");
    let big = build(&fleet, "fleet-big.scp", "big");
    let (x1, xbig) = (artifact(&v1, "x86_64"), artifact(&big, "x86_64"));
    assert!(xbig.len() > 20_000);
    let inv = fleet.inventory(&v1, "canary = 0\nconcurrency = 4\nmax_failures = 4\ncommand_timeout = 30\nconnect_timeout = 5", SERVICE);
    assert_eq!(deploy(&inv, &[]).0, 0);
    // about 9 s per install request of the big filter (its bytes travel inside it, base64)
    for n in fleet.nodes[..3].iter().chain(&fleet.nodes[4..]) {
        n.shape("tbf rate 32kbit burst 4kb latency 5s");
    }
    let inv = fleet.inventory(&big, "canary = 0\nconcurrency = 4\nmax_failures = 4\ncommand_timeout = 30\nconnect_timeout = 5", SERVICE);
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_scpc"))
        .args(["deploy", inv.to_str().expect("utf-8"), "--json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("scpc deploy");
    let wait = std::time::Duration::from_secs(60);
    assert!(wait_for_install_request(&fleet.nodes[4], wait), "the install request to `reset` is on its way");
    // a firewall answers the node's SSH traffic with TCP resets
    fleet.nodes[4].in_netns(
        "nft add table inet cut && nft add chain inet cut in { type filter hook input priority 0 \\; } && \
         nft add rule inet cut in tcp dport 22 reject with tcp reset",
    );
    assert!(wait_for_install_request(&fleet.nodes[0], wait), "the install request to `killed` is on its way");
    fleet.nodes[0].kill(); // power loss: sshd and its sessions die
    assert!(wait_for_install_request(&fleet.nodes[1], wait), "the install request to `unplugged` is on its way");
    fleet.nodes[1].link(false); // cable pulled, for good
    assert!(wait_for_install_request(&fleet.nodes[2], wait), "the install request to `flapping` is on its way");
    fleet.nodes[2].link(false); // cable pulled for 3 s, less than the timeout
    std::thread::sleep(std::time::Duration::from_secs(3));
    fleet.nodes[2].link(true);
    let out = child.wait_with_output().expect("scpc ends");
    let report: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(out.status.code(), Some(2), "{report:#}");
    for (i, name) in [(0, "killed"), (1, "unplugged"), (4, "reset")] {
        let h = host(&report, name);
        assert!(h["services"]["edge"]["result"] == "failed" || h["error"].is_string(), "{name}: {h:#}");
        assert_eq!(fleet.nodes[i].file("fleet.bpf"), Some(x1.clone()), "{name} still holds v1, whole");
        // the node program acts on a whole request only: nothing of the cut one was written
        let partial =
            std::fs::read_dir(&fleet.nodes[i].dir).expect("dir").flatten().any(|e| e.file_name().to_string_lossy().contains("scpc-tmp"));
        assert!(!partial, "{name}: nothing written beside the target");
    }
    assert_eq!(host(&report, "flapping")["services"]["edge"]["result"], "installed", "{report:#}");
    assert_eq!(fleet.nodes[2].file("fleet.bpf"), Some(xbig.clone()));
    assert_eq!(fleet.nodes[3].file("fleet.bpf"), Some(xbig.clone()));
    // plugged back, the next run installs
    fleet.nodes[1].link(true);
    fleet.nodes[1].shape("pfifo");
    fleet.nodes[4].in_netns("nft delete table inet cut");
    fleet.nodes[4].shape("pfifo");
    let (code, report, _) = deploy(&inv, &["--host", "unplugged", "--host", "reset"]);
    assert_eq!(code, 0, "{report:#}");
    for i in [1, 4] {
        assert_eq!(fleet.nodes[i].file("fleet.bpf"), Some(xbig.clone()));
    }
}

#[test]
fn a_slow_lossy_link_still_completes() {
    need(&TEST_BED);
    let mut fleet = Fleet::new("lossy");
    fleet.add("far", Spec { netns: true, ..Spec::default() });
    fleet.add("near", Spec::default());
    // 5% of packets dropped both ways on the node's interface, 200 ms round trips, 256 kbit/s
    fleet.nodes[0].in_netns(
        "nft add table inet chaos && \
         nft add chain inet chaos in { type filter hook input priority 0 \\; } && \
         nft add chain inet chaos out { type filter hook output priority 0 \\; } && \
         nft add rule inet chaos in iifname eth0 numgen random mod 100 \\< 5 counter drop && \
         nft add rule inet chaos out oifname eth0 numgen random mod 100 \\< 5 counter drop",
    );
    fleet.nodes[0].shape("tbf rate 256kbit burst 8kb latency 2s");
    let addr: std::net::SocketAddr = format!("{}:22", fleet.nodes[0].address).parse().expect("addr");
    let before = testbed::connect_time(addr);
    let delayer = fleet.nodes[0].delay(std::time::Duration::from_millis(100));
    let rtt = testbed::connect_time(addr);
    assert!(rtt >= std::time::Duration::from_millis(195), "the delay is real: {before:?} before, {rtt:?} after");
    fleet.known_hosts();
    let big = build(&fleet, "fleet-big.scp", "big");
    let inv = fleet.inventory(&big, "canary = 0\ncommand_timeout = 120\nconnect_timeout = 60", SERVICE);
    let started = std::time::Instant::now();
    let (code, report, err) = deploy(&inv, &[]);
    let took = started.elapsed();
    assert_eq!(code, 0, "{report:#}\n{err}");
    let xbig = artifact(&big, "x86_64");
    assert_eq!(fleet.nodes[0].file("fleet.bpf"), Some(xbig.clone()));
    assert_eq!(fleet.nodes[1].file("fleet.bpf"), Some(xbig));
    let far = host(&report, "far")["seconds"].as_f64().expect("seconds");
    let near = host(&report, "near")["seconds"].as_f64().expect("seconds");
    let drops = fleet.nodes[0].in_netns("nft list table inet chaos");
    println!("far {far:.2}s, near {near:.2}s, whole run {took:?}; round trip {before:?} -> {rtt:?}\n{drops}");
    let held = delayer.held.load(std::sync::atomic::Ordering::Relaxed);
    drop(delayer);
    assert!(held > 20, "the transfer went through the delayer ({held} packets)");
    // the link was really slow: each of the dozen or more round trips costs 200 ms
    assert!(far > near + 2.0, "far {far}, near {near}");
    let dropped: u64 = drops.split("counter packets ").skip(1).filter_map(|t| t.split_whitespace().next()?.parse::<u64>().ok()).sum();
    assert!(dropped > 0, "packets were lost: {drops}");
}

/// The fleet benchmark of BENCHMARKS.md (not a test: run it with
/// `cargo test --release -p scpc-compiler --test deploy -- --ignored --nocapture fleet_benchmark`):
/// 50 sshd nodes on loopback, a full deploy at several concurrencies (each run changes every
/// host: v1 and v2 alternate), wall time and time per host.
#[test]
#[ignore]
fn fleet_benchmark() {
    need(&TEST_BED);
    let mut fleet = Fleet::new("bench");
    let started = std::time::Instant::now();
    for i in 0..50 {
        fleet.add(&format!("b{i:02}"), Spec::default());
    }
    println!("50 nodes started in {:.2?}", started.elapsed());
    fleet.known_hosts();
    let v1 = build(&fleet, "fleet.scp", "v1");
    let v2 = build(&fleet, "fleet-v2.scp", "v2");
    println!("| concurrency | wall time (s) | mean time per host (s) | hosts/s |");
    println!("|---|---|---|---|");
    for (k, c) in [1usize, 4, 8, 16, 32].iter().enumerate() {
        let art = if k % 2 == 0 { &v1 } else { &v2 };
        let inv = fleet.inventory(art, &format!("canary = 0\nwave_size = 50\nconcurrency = {c}"), SERVICE);
        let t = std::time::Instant::now();
        let (code, report, err) = deploy(&inv, &[]);
        let wall = t.elapsed().as_secs_f64();
        assert_eq!(code, 0, "{err}");
        let per: f64 = report["hosts"].as_array().expect("hosts").iter().map(|h| h["seconds"].as_f64().unwrap_or(0.0)).sum::<f64>() / 50.0;
        println!("| {c} | {wall:.2} | {per:.3} | {:.1} |", 50.0 / wall);
    }
}

/// The latency-bound half of the fleet benchmark (BENCHMARKS.md; run it with
/// `cargo test --release -p scpc-compiler --test deploy -- --ignored --nocapture fleet_latency_benchmark`):
/// 16 nodes in their own network namespaces behind the packet delayer, 50 ms each way (100 ms
/// round trips, a regional WAN), deployed at several concurrencies.
#[test]
#[ignore]
fn fleet_latency_benchmark() {
    need(&TEST_BED);
    let mut fleet = Fleet::new("benchwan");
    for i in 0..16 {
        fleet.add(&format!("w{i:02}"), Spec { netns: true, ..Spec::default() });
    }
    let nodes: Vec<&testbed::Node> = fleet.nodes.iter().collect();
    let delayer = testbed::Delayer::start(&nodes, std::time::Duration::from_millis(50));
    let addr: std::net::SocketAddr = format!("{}:22", fleet.nodes[0].address).parse().expect("addr");
    println!("round trip to w00: {:.1?}", testbed::connect_time(addr));
    fleet.known_hosts();
    let v1 = build(&fleet, "fleet.scp", "v1");
    let v2 = build(&fleet, "fleet-v2.scp", "v2");
    println!("| concurrency | wall time (s) | mean time per host (s) | hosts/s |");
    println!("|---|---|---|---|");
    for (k, c) in [1usize, 4, 16].iter().enumerate() {
        let art = if k % 2 == 0 { &v1 } else { &v2 };
        let inv = fleet.inventory(art, &format!("canary = 0\nwave_size = 16\nconcurrency = {c}"), SERVICE);
        let t = std::time::Instant::now();
        let (code, report, err) = deploy(&inv, &[]);
        let wall = t.elapsed().as_secs_f64();
        assert_eq!(code, 0, "{err}");
        let per: f64 = report["hosts"].as_array().expect("hosts").iter().map(|h| h["seconds"].as_f64().unwrap_or(0.0)).sum::<f64>() / 16.0;
        println!("| {c} | {wall:.2} | {per:.3} | {:.1} |", 16.0 / wall);
    }
    drop(delayer);
}

#[test]
fn hashed_known_hosts_entries_from_ssh_keygen_are_honoured() {
    need(&TEST_BED);
    let mut fleet = Fleet::new("hashed");
    fleet.add("h0", Spec::default());
    let kh = fleet.known_hosts();
    testbed::sh(&format!("ssh-keygen -q -H -f {} && rm -f {}.old", kh.display(), kh.display()));
    let hashed = std::fs::read_to_string(&kh).expect("kh");
    assert!(hashed.starts_with("|1|"), "{hashed}");
    let art = build(&fleet, "fleet.scp", "v1");
    let inv = fleet.inventory(&art, "", SERVICE);
    let (code, report, err) = deploy(&inv, &[]);
    assert_eq!(code, 0, "{report:#}\n{err}");
    assert_eq!(fleet.nodes[0].file("fleet.bpf"), Some(artifact(&art, "x86_64")));
}
