//! The Ansible collection in `ansible/` (`scpc.fleet`), run for real: built and installed with
//! `ansible-galaxy` as a user does, its playbook `scpc.fleet.rollout` run by `ansible-playbook`
//! (Debian's ansible-core) against the test bed's nodes: an OpenSSH node, a dropbear node
//! without SFTP, and a node whose network namespace is reached only through a bastion
//! (`ProxyJump`). Host keys are checked (`StrictHostKeyChecking yes` with the fleet's
//! known_hosts), and no host may run Python (`ansible_python_interpreter` names nothing).
//!
//! It asserts: the first run brings the node program and installs the bytes of the artifact;
//! the second is `changed=0`; `--check --diff` of a new version writes nothing and shows the
//! change; a failing health check puts the previous bytes back and fails the host, and with
//! `serial: 1` and `max_fail_percentage: 0` the wave after it is never touched; a rollback
//! through the bastion; `state: status` reports what `scpc status` reports, read from the
//! same inventory file; and `scpc deploy`/`scpc rollback` driven by that same file leave bytes
//! the playbook then finds `unchanged`.

mod testbed;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use testbed::support::{need, TEST_BED};
use testbed::{build_policy, fleet_json, report_host, Fleet, Node, Server, Spec, EDGE};

/// The service every host runs: a stand-in process started by the reload command (not under
/// the filter: the enforcement check must find it so), and a health check that fails on a
/// host holding `/srv/edge/unhealthy`.
fn services() -> serde_json::Value {
    serde_json::json!([{
        "name": "edge",
        "policy": "fleet",
        "path": format!("{EDGE}/fleet.bpf"),
        "pid_file": format!("{EDGE}/edge.pid"),
        "reload": format!("[ -f {EDGE}/edge.pid ] && kill $(cat {EDGE}/edge.pid) 2>/dev/null; sleep 600 </dev/null >/dev/null 2>&1 & echo $! > {EDGE}/edge.pid"),
        "health": format!("if [ -e {EDGE}/unhealthy ]; then echo unhealthy >&2; exit 1; fi"),
    }])
}

/// The collection, built from `ansible/` and installed under `root/collections`.
fn install_collection(root: &Path) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../ansible");
    let out = root.join("galaxy");
    let run = |args: &[&str]| {
        let o = Command::new("ansible-galaxy").args(args).env("ANSIBLE_NOCOLOR", "1").output().expect("ansible-galaxy runs");
        assert!(
            o.status.success(),
            "ansible-galaxy {args:?}: {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
    };
    run(&["collection", "build", src.to_str().expect("utf-8"), "--output-path", out.to_str().expect("utf-8"), "--force"]);
    let tarball = out.join("scpc-fleet-0.1.0.tar.gz");
    let dest = root.join("collections");
    run(&["collection", "install", tarball.to_str().expect("utf-8"), "-p", dest.to_str().expect("utf-8"), "--force"]);
    // the action's documentation (the module stub) parses and names every state
    let doc = Command::new("ansible-doc")
        .arg("scpc.fleet.scpc_filter")
        .env("ANSIBLE_COLLECTIONS_PATH", &dest)
        .output()
        .expect("ansible-doc runs");
    let text = String::from_utf8_lossy(&doc.stdout).into_owned() + &String::from_utf8_lossy(&doc.stderr);
    assert!(doc.status.success() && ["present", "rolled_back", "status", "check_mode"].iter().all(|w| text.contains(w)), "{text}");
    dest
}

/// How to run the collection's playbook.
struct Play<'a> {
    hosts: &'a Path,
    collections: &'a Path,
    root: &'a Path,
}

/// What a run of the playbook said.
struct Run {
    /// Its exit status.
    code: i32,
    /// Its PLAY RECAP: per host, `ok`, `changed`, `failed`...
    recap: BTreeMap<String, BTreeMap<String, u64>>,
    /// Per host, the last task's result (Ansible's `tree` callback).
    results: BTreeMap<String, serde_json::Value>,
    /// Its output, for messages.
    text: String,
}

impl Run {
    /// A count of the host's PLAY RECAP line (none: the host is not in it).
    fn recap(&self, host: &str, what: &str) -> Option<u64> {
        self.recap.get(host).and_then(|r| r.get(what)).copied()
    }

    /// The host's result for the one service (the loop's only item).
    fn result(&self, host: &str) -> &serde_json::Value {
        let r = self.results.get(host).unwrap_or_else(|| panic!("no result for {host}:\n{}", self.text));
        &r["results"][0]
    }
}

impl Play<'_> {
    fn run(&self, vars: serde_json::Value, extra: &[&str]) -> Run {
        static RUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let tree = self.root.join(format!("tree-{}", RUNS.fetch_add(1, std::sync::atomic::Ordering::SeqCst)));
        let out = Command::new("ansible-playbook")
            .args(["-i", self.hosts.to_str().expect("utf-8"), "scpc.fleet.rollout", "-e", &vars.to_string()])
            .args(extra)
            .env("ANSIBLE_COLLECTIONS_PATH", self.collections)
            .env("ANSIBLE_CALLBACKS_ENABLED", "tree")
            .env("ANSIBLE_CALLBACK_TREE_DIR", &tree)
            .env("ANSIBLE_HOST_KEY_CHECKING", "True")
            .env("ANSIBLE_NOCOLOR", "1")
            .env("ANSIBLE_RETRY_FILES_ENABLED", "False")
            .env("ANSIBLE_LOCAL_TEMP", self.root.join("ansible-tmp"))
            .env("ANSIBLE_SSH_CONTROL_PATH_DIR", self.root.join("cp"))
            .env_remove("SCPC_NODE_PROGRAMS")
            .output()
            .expect("ansible-playbook runs");
        let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
        let mut recap = BTreeMap::new();
        let lines = text.lines().skip_while(|l| !l.starts_with("PLAY RECAP"));
        for line in lines.skip(1) {
            let Some((host, counts)) = line.split_once(" : ") else { continue };
            let counts =
                counts.split_whitespace().filter_map(|kv| kv.split_once('=')).filter_map(|(k, v)| Some((k.to_string(), v.parse().ok()?)));
            recap.insert(host.trim().to_string(), counts.collect());
        }
        let mut results = BTreeMap::new();
        for entry in std::fs::read_dir(&tree).into_iter().flatten().flatten() {
            let bytes = std::fs::read(entry.path()).expect("tree file");
            let value = serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&bytes)));
            results.insert(entry.file_name().to_string_lossy().into_owned(), value);
        }
        Run { code: out.status.code().unwrap_or(-1), recap, results, text }
    }
}

fn vars(artifacts: &Path, extra: serde_json::Value) -> serde_json::Value {
    let mut v = serde_json::json!({
        "scpc_artifacts": artifacts,
        "scpc_node_programs": testbed::node_programs(),
        "scpc_node_program": format!("{}/scpc-node", testbed::NODE_DIR),
        "scpc_services": services(),
        "scpc_serial": 3,
        "scpc_operator": "ci",
    });
    if let (Some(v), Some(e)) = (v.as_object_mut(), extra.as_object()) {
        v.extend(e.clone());
    }
    v
}

fn bpf(dir: &Path) -> Vec<u8> {
    std::fs::read(dir.join("fleet.x86_64.bpf")).expect("artifact")
}

#[test]
fn the_collection_installs_is_idempotent_checks_rolls_back_in_waves_and_reports_status() {
    need(&TEST_BED);
    for program in ["ansible-playbook", "ansible-galaxy"] {
        let ok = Command::new(program).arg("--version").output().is_ok_and(|o| o.status.success());
        assert!(ok, "{program} is missing: .ci/run installs Debian's ansible-core");
    }
    let mut fleet = Fleet::new("ansible");
    fleet.add("a", Spec { netns: true, ..Spec::default() });
    fleet.add("d", Spec { netns: true, server: Server::Dropbear, no_sftp: true, ..Spec::default() });
    fleet.add("b1", Spec { netns: true, ..Spec::default() });
    let b1_ns = fleet.nodes[2].netns.clone();
    fleet.add("far", Spec { netns: true, behind: b1_ns, ..Spec::default() });
    let kh = fleet.known_hosts();
    let [a, d, b1, far] = [0, 1, 2, 3].map(|i| &fleet.nodes[i]);
    let targets: [&Node; 3] = [a, d, far];
    let v1 = build_policy(&fleet, "fleet.scp", "fleet", "v1");
    let v2 = build_policy(&fleet, "fleet-v2.scp", "fleet", "v2");
    assert_ne!(bpf(&v1), bpf(&v2));

    let ssh_config = fleet.ssh_config(&kh);
    // one inventory for ansible-playbook and scpc; no Python on any host is used
    let hosts = fleet.root.join("hosts.yml");
    std::fs::write(
        &hosts,
        format!(
            "all:\n  vars:\n    ansible_user: root\n    ansible_ssh_private_key_file: {key}\n    ansible_ssh_common_args: -F {cfg}\n    \
             ansible_python_interpreter: /nonexistent/python3\n  children:\n    \
             edge:\n      hosts:\n        a: {{ansible_host: {a}, ansible_port: {ap}}}\n        d: {{ansible_host: {d}, ansible_port: {dp}}}\n    \
             plant:\n      vars:\n        ansible_ssh_common_args: -F {cfg} -o ProxyJump=root@{b1}:{b1p}\n      hosts:\n        \
             far: {{ansible_host: {far}, ansible_port: {farp}}}\n",
            key = fleet.key.display(),
            cfg = ssh_config.display(),
            a = a.address,
            ap = a.port,
            d = d.address,
            dp = d.port,
            b1 = b1.address,
            b1p = b1.port,
            far = far.address,
            farp = far.port,
        ),
    )
    .expect("hosts.yml");
    let collections = install_collection(&fleet.root);
    let play = Play { hosts: &hosts, collections: &collections, root: &fleet.root };

    // 1. the first run brings the node program (over stdin: dropbear has no SFTP here) and
    // installs the artifact's bytes, through the bastion for `far`
    let run = play.run(vars(&v1, serde_json::json!({})), &[]);
    assert_eq!(run.code, 0, "{}", run.text);
    for n in targets {
        assert_eq!(run.recap(&n.name, "changed"), Some(1), "{}: {}", n.name, run.text);
        let r = run.result(&n.name);
        assert_eq!((r["outcome"].as_str(), r["node_program"].as_str()), (Some("installed"), Some("brought")), "{r:#}");
        assert_eq!(n.file("fleet.bpf"), Some(bpf(&v1)), "{} holds v1", n.name);
    }
    assert!(b1.file("fleet.bpf").is_none(), "the bastion is not deployed to");
    let node_program = std::fs::read(testbed::node_programs().join("x86_64/scpc-node")).expect("node program");
    let (_, held) = a.run(&format!("sha256sum {}/scpc-node", testbed::NODE_DIR));
    assert!(held.starts_with(&testbed::sha256(&node_program)), "the node program on a: {held}");

    // 2. idempotent: nothing changes, nothing is reported changed
    let run = play.run(vars(&v1, serde_json::json!({})), &[]);
    assert_eq!(run.code, 0, "{}", run.text);
    for n in targets {
        assert_eq!((run.recap(&n.name, "changed"), run.recap(&n.name, "ok")), (Some(0), Some(1)), "{}", run.text);
        assert_eq!(run.result(&n.name)["outcome"], "unchanged");
    }

    // 3. --check --diff of v2: reported as a change with both digests, nothing written
    let state_before = a.file(".scpc/fleet.bpf/state.json");
    let run = play.run(vars(&v2, serde_json::json!({})), &["--check", "--diff"]);
    assert_eq!(run.code, 0, "{}", run.text);
    let (s1, s2) = (testbed::sha256(&bpf(&v1)), testbed::sha256(&bpf(&v2)));
    for n in targets {
        assert_eq!(run.recap(&n.name, "changed"), Some(1), "{}", run.text);
        let r = run.result(&n.name);
        assert_eq!(r["outcome"], "would-install", "{r:#}");
        let diff = &r["diff"];
        let (before, after) = (diff["before"].as_str().unwrap_or_default(), diff["after"].as_str().unwrap_or_default());
        assert!(before.contains(&s1) && before.contains(&format!("size: {} bytes", bpf(&v1).len())), "{r:#}");
        assert!(after.contains(&s2) && after.contains(&format!("size: {} bytes", bpf(&v2).len())), "{r:#}");
        assert_eq!(n.file("fleet.bpf"), Some(bpf(&v1)), "check mode wrote to {}", n.name);
    }
    assert_eq!(a.file(".scpc/fleet.bpf/state.json"), state_before, "check mode left the node's state as it was");

    // 4. v2 in waves of one host, no failure tolerated: `a` takes it, `d`'s health check
    // fails (its node program puts v1 back and the host fails), and `far`'s wave never starts
    std::fs::write(d.dir.join("unhealthy"), "").expect("unhealthy marker");
    let run = play.run(vars(&v2, serde_json::json!({"scpc_serial": 1, "scpc_max_fail_percentage": 0})), &[]);
    assert_ne!(run.code, 0, "the play failed: {}", run.text);
    assert_eq!(a.file("fleet.bpf"), Some(bpf(&v2)), "the first wave took v2");
    assert_eq!(d.file("fleet.bpf"), Some(bpf(&v1)), "the failed health check put v1 back on d");
    let r = run.result("d");
    assert_eq!((r["outcome"].as_str(), r["failed"].as_bool()), (Some("rolled-back"), Some(true)), "{r:#}");
    assert_eq!(r["after"].as_str(), Some(s1.as_str()), "{r:#}");
    assert!(r["msg"].as_str().unwrap_or_default().contains("health exited 1: unhealthy"), "{r:#}");
    assert_eq!(run.recap("d", "failed"), Some(1), "{}", run.text);
    assert!(!run.results.contains_key("far") && !run.recap.contains_key("far"), "far's wave ran: {}", run.text);
    assert_eq!(far.file("fleet.bpf"), Some(bpf(&v1)), "far untouched");
    std::fs::remove_file(d.dir.join("unhealthy")).expect("healthy again");

    // 5. behind the bastion: v2 (with its diff), then rolled back to v1
    let run = play.run(vars(&v2, serde_json::json!({})), &["--limit", "far", "--diff"]);
    assert_eq!(run.code, 0, "{}", run.text);
    assert_eq!(far.file("fleet.bpf"), Some(bpf(&v2)));
    let r = run.result("far");
    let diff = (r["diff"]["before"].as_str().unwrap_or_default(), r["diff"]["after"].as_str().unwrap_or_default());
    assert!(diff.0.contains(&format!("sha256: {s1}\nsize: {} bytes", bpf(&v1).len())), "{r:#}");
    assert!(diff.1.contains(&format!("sha256: {s2}\nsize: {} bytes", bpf(&v2).len())), "{r:#}");
    let run = play.run(vars(&v2, serde_json::json!({"scpc_state": "rolled_back"})), &["--limit", "far", "--check"]);
    assert_eq!(run.code, 0, "{}", run.text);
    let r = run.result("far");
    assert_eq!(
        (r["outcome"].as_str(), r["before"].as_str(), r["after"].as_str()),
        (Some("would-revert"), Some(s2.as_str()), Some(s1.as_str())),
        "{r:#}"
    );
    assert_eq!(far.file("fleet.bpf"), Some(bpf(&v2)), "a rollback in check mode wrote nothing");
    let run = play.run(vars(&v2, serde_json::json!({"scpc_state": "rolled_back"})), &["--limit", "far"]);
    assert_eq!(run.code, 0, "{}", run.text);
    let r = run.result("far");
    assert_eq!(
        (r["outcome"].as_str(), r["before"].as_str(), r["after"].as_str()),
        (Some("reverted"), Some(s2.as_str()), Some(s1.as_str())),
        "{r:#}"
    );
    assert_eq!(run.recap("far", "changed"), Some(1), "{}", run.text);
    assert_eq!(far.file("fleet.bpf"), Some(bpf(&v1)), "far rolled back through the bastion");

    // 6. status: what `scpc status` says, read from the same inventory file (a: in sync, d and
    // far: outdated; every stand-in process runs unfiltered)
    let settings = fleet.root.join("scpc.toml");
    std::fs::write(
        &settings,
        format!(
            "ansible_inventory = \"hosts.yml\"\nartifacts = \"{}\"\ninstall_root = \"{EDGE}\"\nnode_programs = \"{}\"\n\n\
             [defaults]\nknown_hosts = \"known_hosts\"\n\n\
             [[service]]\nname = \"edge\"\npolicy = \"fleet\"\npath = \"{EDGE}/fleet.bpf\"\npid_file = \"{EDGE}/edge.pid\"\nhosts = [\"edge\", \"plant\"]\n",
            v2.display(),
            testbed::node_programs().display()
        ),
    )
    .expect("scpc.toml");
    let (code, scpc_report, err) = fleet_json("status", &settings, &[]);
    assert_eq!(code, 2, "d and far are outdated: {scpc_report:#}\n{err}");
    let run = play.run(vars(&v2, serde_json::json!({"scpc_state": "status"})), &[]);
    assert_eq!(run.code, 0, "{}", run.text);
    for (n, verdict) in [(a, "in-sync"), (d, "outdated"), (far, "outdated")] {
        let ours = run.result(&n.name);
        let theirs = &report_host(&scpc_report, &n.name)["services"]["edge"];
        assert_eq!(theirs["verdict"], verdict, "{scpc_report:#}");
        for key in ["verdict", "actual", "recorded", "local", "enforcement"] {
            assert_eq!(ours[key], theirs[key], "{}: {key}: ansible {ours:#}\nscpc {theirs:#}", n.name);
        }
        assert_eq!(ours["enforcement"]["state"], "not-enforced", "{ours:#}");
        assert_eq!(ours["in_sync"], false, "{ours:#}");
        assert_eq!(run.recap(&n.name, "changed"), Some(0), "status changes nothing: {}", run.text);
    }

    // 7. attacks. Another program at the node program's path is replaced by ours (sha256
    // compared), and the filter is still seen unchanged
    let node_path = format!("{}/scpc-node", testbed::NODE_DIR);
    let (code, out) = a.run(&format!(
        "printf '#!/bin/sh\\necho {{}}\\n' > {node_path}.new && chmod 755 {node_path}.new && mv -f {node_path}.new {node_path}"
    ));
    assert_eq!(code, 0, "{out}");
    let run = play.run(vars(&v2, serde_json::json!({})), &["--limit", "a"]);
    assert_eq!(run.code, 0, "{}", run.text);
    let r = run.result("a");
    assert_eq!((r["node_program"].as_str(), r["outcome"].as_str()), (Some("brought"), Some("unchanged")), "{r:#}");
    let (_, held) = a.run(&format!("sha256sum {node_path}"));
    assert!(held.starts_with(&testbed::sha256(&node_program)), "our node program is back: {held}");
    // our node program of another architecture at that path (it cannot run here, or runs
    // under binfmt and says it is aarch64's): replaced by x86_64's
    let aarch64 = std::fs::read(testbed::node_programs().join("aarch64/scpc-node")).expect("the aarch64 node program");
    let mut cat = a.ssh_command(&format!("cat > {node_path}.new && chmod 755 {node_path}.new && mv -f {node_path}.new {node_path}"));
    let copied =
        cat.stdin(std::fs::File::open(testbed::node_programs().join("aarch64/scpc-node")).expect("open")).output().expect("ssh runs");
    assert!(copied.status.success(), "{}", String::from_utf8_lossy(&copied.stderr));
    let (_, held) = a.run(&format!("sha256sum {node_path}"));
    assert!(held.starts_with(&testbed::sha256(&aarch64)), "aarch64's node program is on a: {held}");
    let run = play.run(vars(&v2, serde_json::json!({})), &["--limit", "a"]);
    assert_eq!(run.code, 0, "{}", run.text);
    assert_eq!(run.result("a")["node_program"], "brought", "{}", run.text);
    let (_, held) = a.run(&format!("sha256sum {node_path}"));
    assert!(held.starts_with(&testbed::sha256(&node_program)), "x86_64's node program is back: {held}");
    // a filter that is not the one its manifest names is refused before anything is sent
    let forged = fleet.root.join("forged");
    std::fs::create_dir_all(&forged).expect("forged dir");
    for entry in std::fs::read_dir(&v1).expect("v1").flatten() {
        std::fs::copy(entry.path(), forged.join(entry.file_name())).expect("copy");
    }
    std::fs::write(forged.join("fleet.x86_64.bpf"), bpf(&v2)).expect("forge");
    let run = play.run(vars(&forged, serde_json::json!({})), &["--limit", "a"]);
    assert_ne!(run.code, 0, "{}", run.text);
    assert!(run.text.contains("but the manifest says") && run.text.contains("rebuild before deploying"), "{}", run.text);
    assert_eq!(a.file("fleet.bpf"), Some(bpf(&v2)), "a keeps v2");
    // a node program path that would smuggle a command, and a policy name that is a path
    for (key, value, refusal) in [
        ("scpc_node_program", "/var/lib/scpc/x;touch /srv/edge/pwned", "is not an absolute path"),
        ("scpc_node_program", "/var/lib/scpc/../../../srv/edge/x", "is not an absolute path"),
    ] {
        let run = play.run(vars(&v2, serde_json::json!({ key: value })), &["--limit", "a"]);
        assert_ne!(run.code, 0, "{}", run.text);
        assert!(run.text.contains(refusal), "{value}: {}", run.text);
    }
    let mut bad = services();
    bad[0]["policy"] = serde_json::json!("../../etc/fleet");
    let run = play.run(vars(&v2, serde_json::json!({ "scpc_services": bad })), &["--limit", "a"]);
    assert_ne!(run.code, 0, "{}", run.text);
    assert!(run.text.contains("is not a policy name"), "{}", run.text);
    assert!(a.file("pwned").is_none(), "a command was run");
    assert_eq!(a.file("fleet.bpf"), Some(bpf(&v2)), "a keeps v2");

    // 8. the session cut while the health check runs (the node program finishes its job
    // without it): the action connects again and judges from the node's record, as `scpc
    // deploy` does: a failed check the node undid is a rolled-back failure, a passed one is
    // installed with a warning
    let mut slow = services();
    slow[0]["health"] = serde_json::json!(format!("touch {EDGE}/checking; sleep 3; test ! -e {EDGE}/sick"));
    for (sick, want, outcome) in [(true, &v2, "rolled-back"), (false, &v1, "installed")] {
        if sick {
            std::fs::write(a.dir.join("sick"), "").expect("sick");
        } else {
            let _ = std::fs::remove_file(a.dir.join("sick"));
        }
        let _ = std::fs::remove_file(a.dir.join("checking"));
        let run = std::thread::scope(|scope| {
            let playing =
                scope.spawn(|| play.run(vars(&v1, serde_json::json!({"scpc_services": slow, "scpc_timeout": 10})), &["--limit", "a"]));
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
            while !a.dir.join("checking").exists() && std::time::Instant::now() < deadline {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            assert!(a.dir.join("checking").exists(), "the health check started");
            assert!(a.kill_sessions() > 0, "the session was cut");
            playing.join().expect("the playbook run")
        });
        let r = run.result("a");
        assert_eq!(r["outcome"], outcome, "sick = {sick}: {r:#}\n{}", run.text);
        assert!(r["session_lost"].as_str().is_some_and(|l| l.starts_with("the session was lost")), "{r:#}");
        assert_eq!(a.file("fleet.bpf").as_ref(), Some(&bpf(want)), "sick = {sick}");
        if sick {
            assert_ne!(run.code, 0, "{}", run.text);
            assert!(r["msg"].as_str().unwrap_or_default().contains("the node had rolled back itself (health exited 1"), "{r:#}");
        } else {
            assert_eq!(run.code, 0, "{}", run.text);
            // the warning, as Ansible prints it (wrapped)
            let words = run.text.split_whitespace().collect::<Vec<_>>().join(" ");
            assert!(words.contains("connected again: the node had finished the install and its checks"), "{}", run.text);
        }
    }

    // 9. one inventory file, two drivers: `scpc deploy` and `scpc rollback` read the very
    // hosts.yml the playbook uses (with scpc's settings beside it, as for status), reach the
    // same hosts (`far` through the bastion), and the playbook then finds their bytes
    // `unchanged`: both agree on what is installed where
    let (code, report, err) = fleet_json("deploy", &settings, &[]);
    assert_eq!(code, 0, "{report:#}\n{err}");
    for n in targets {
        assert_eq!(report_host(&report, &n.name)["services"]["edge"]["result"], "installed", "{report:#}");
        assert_eq!(n.file("fleet.bpf"), Some(bpf(&v2)), "scpc deploy put v2 on {}", n.name);
    }
    assert!(b1.file("fleet.bpf").is_none(), "the bastion is not deployed to");
    let run = play.run(vars(&v2, serde_json::json!({})), &[]);
    assert_eq!(run.code, 0, "{}", run.text);
    for n in targets {
        assert_eq!(run.recap(&n.name, "changed"), Some(0), "{}: {}", n.name, run.text);
        assert_eq!(run.result(&n.name)["outcome"], "unchanged", "{}", run.text);
    }
    let (code, report, err) = fleet_json("rollback", &settings, &[]);
    assert_eq!(code, 0, "{report:#}\n{err}");
    for n in targets {
        assert_eq!(n.file("fleet.bpf"), Some(bpf(&v1)), "scpc rollback put v1 back on {}: {report:#}", n.name);
    }
    let run = play.run(vars(&v1, serde_json::json!({})), &[]);
    assert_eq!(run.code, 0, "{}", run.text);
    for n in targets {
        assert_eq!(run.recap(&n.name, "changed"), Some(0), "{}: {}", n.name, run.text);
        assert_eq!(run.result(&n.name)["outcome"], "unchanged", "{}", run.text);
    }
}

/// The real aarch64 machine (Debian's arm64 kernel under qemu, busybox and dropbear, no
/// Python at all): the action picks the aarch64 filter and node program from what the host
/// says, installs, is idempotent, and reports status as `scpc status` does.
#[test]
fn the_collection_deploys_to_the_aarch64_vm_node_which_has_no_python() {
    need(&TEST_BED);
    let mut fleet = Fleet::new("ansible-vm");
    fleet.add_arm64("arm64");
    let kh = fleet.known_hosts();
    let vm = &fleet.nodes[0];
    let (_, python) = vm.run("command -v python3 python; uname -m");
    assert_eq!(python.trim(), "aarch64", "the VM node has no Python");
    let v1 = build_policy(&fleet, "fleet.scp", "fleet", "v1");
    let hosts = fleet.root.join("hosts.yml");
    std::fs::write(
        &hosts,
        format!(
            "all:\n  hosts:\n    arm64:\n      ansible_host: {}\n      ansible_port: {}\n      ansible_user: root\n      \
             ansible_ssh_private_key_file: {}\n      ansible_ssh_common_args: -o UserKnownHostsFile={} -o StrictHostKeyChecking=yes\n",
            vm.address,
            vm.port,
            fleet.key.display(),
            kh.display()
        ),
    )
    .expect("hosts.yml");
    let collections = install_collection(&fleet.root);
    let play = Play { hosts: &hosts, collections: &collections, root: &fleet.root };
    let filter = std::fs::read(v1.join("fleet.aarch64.bpf")).expect("the aarch64 artifact");
    let run = play.run(vars(&v1, serde_json::json!({"scpc_timeout": 120})), &[]);
    assert_eq!(run.code, 0, "{}", run.text);
    let r = run.result("arm64");
    assert_eq!(
        (r["arch"].as_str(), r["outcome"].as_str(), r["node_program"].as_str()),
        (Some("aarch64"), Some("installed"), Some("brought")),
        "{r:#}"
    );
    assert_eq!(vm.file("fleet.bpf"), Some(filter), "the VM holds the aarch64 filter");
    let program = std::fs::read(testbed::node_programs().join("aarch64/scpc-node")).expect("the aarch64 node program");
    let (_, held) = vm.run(&format!("sha256sum {}/scpc-node", testbed::NODE_DIR));
    assert!(held.starts_with(&testbed::sha256(&program)), "the aarch64 node program: {held}");
    let run = play.run(vars(&v1, serde_json::json!({"scpc_timeout": 120})), &[]);
    assert_eq!((run.code, run.recap("arm64", "changed")), (0, Some(0)), "{}", run.text);
    let run = play.run(vars(&v1, serde_json::json!({"scpc_state": "status", "scpc_timeout": 120})), &[]);
    assert_eq!(run.code, 0, "{}", run.text);
    let r = run.result("arm64");
    assert_eq!((r["verdict"].as_str(), r["enforcement"]["state"].as_str()), (Some("in-sync"), Some("not-enforced")), "{r:#}");
}

/// The push at scale, scpc against the collection (BENCHMARKS.md; run it with
/// `cargo test --release -p scpc-compiler --test ansible_collection -- --ignored --nocapture ansible_scale_benchmark`,
/// `SCPC_BENCH_HOSTS` nodes, 50 by default): OpenSSH nodes on loopback, one hosts.yml for both
/// drivers, then at each concurrency a full `scpc deploy --concurrency C` and a full
/// `ansible-playbook scpc.fleet.rollout --forks C` (one wave of every host), each changing every
/// host (v1 and v2 alternate from run to run), then one run of each that changes nothing.
/// Every Ansible run starts with no SSH control masters (as scpc starts with no connections).
#[test]
#[ignore]
fn ansible_scale_benchmark() {
    need(&TEST_BED);
    let n: usize = std::env::var("SCPC_BENCH_HOSTS").ok().and_then(|v| v.parse().ok()).unwrap_or(50);
    let mut fleet = Fleet::new("ansible-bench");
    let started = std::time::Instant::now();
    for i in 0..n {
        fleet.add(&format!("b{i:03}"), Spec::default());
    }
    println!("{n} nodes started in {:.2?}", started.elapsed());
    let kh = fleet.known_hosts();
    let cfg = fleet.ssh_config(&kh);
    let mut hosts_yml = format!(
        "all:\n  vars:\n    ansible_user: root\n    ansible_ssh_private_key_file: {}\n    ansible_ssh_common_args: -F {}\n    \
         ansible_python_interpreter: /nonexistent/python3\n  hosts:\n",
        fleet.key.display(),
        cfg.display()
    );
    for node in &fleet.nodes {
        hosts_yml += &format!("    {}: {{ansible_host: {}, ansible_port: {}}}\n", node.name, node.address, node.port);
    }
    let hosts = fleet.root.join("hosts.yml");
    std::fs::write(&hosts, hosts_yml).expect("hosts.yml");
    let versions = [build_policy(&fleet, "fleet.scp", "fleet", "v1"), build_policy(&fleet, "fleet-v2.scp", "fleet", "v2")];
    // scpc's settings beside hosts.yml, one per version; the service is the same for both
    let settings = versions.each_ref().map(|art| {
        let name = art.file_name().expect("name").to_string_lossy().into_owned();
        let path = fleet.root.join(format!("scpc-{name}.toml"));
        std::fs::write(
            &path,
            format!(
                "ansible_inventory = \"hosts.yml\"\nartifacts = \"{}\"\ninstall_root = \"{EDGE}\"\nnode_programs = \"{}\"\n\n\
                 [defaults]\nknown_hosts = \"known_hosts\"\n\n[rollout]\ncanary = 0\nwave_size = {n}\n\n\
                 [[service]]\nname = \"edge\"\npolicy = \"fleet\"\npath = \"{EDGE}/fleet.bpf\"\n",
                art.display(),
                testbed::node_programs().display()
            ),
        )
        .expect("scpc settings");
        path
    });
    let service = serde_json::json!([{"name": "edge", "policy": "fleet", "path": format!("{EDGE}/fleet.bpf")}]);
    let collections = install_collection(&fleet.root);
    let mut runs = 0;
    let scpc = |v: usize, c: usize, want: &str| {
        let t = std::time::Instant::now();
        let (code, report, err) = fleet_json("deploy", &settings[v], &["--concurrency", &c.to_string()]);
        let wall = t.elapsed().as_secs_f64();
        assert_eq!(code, 0, "{err}");
        for node in &fleet.nodes {
            assert_eq!(report_host(&report, &node.name)["services"]["edge"]["result"], want, "{report:#}");
        }
        wall
    };
    let mut ansible = |v: usize, forks: usize, changed: u64| {
        runs += 1;
        let root = fleet.root.join(format!("play-{runs}"));
        std::fs::create_dir_all(&root).expect("play dir");
        let play = Play { hosts: &hosts, collections: &collections, root: &root };
        let vars = vars(&versions[v], serde_json::json!({"scpc_services": service, "scpc_serial": n}));
        let t = std::time::Instant::now();
        let run = play.run(vars, &["--forks", &forks.to_string()]);
        let wall = t.elapsed().as_secs_f64();
        assert_eq!(run.code, 0, "{}", run.text);
        for node in &fleet.nodes {
            assert_eq!(run.recap(&node.name, "changed"), Some(changed), "{}: {}", node.name, run.text);
        }
        wall
    };
    // first contact: the node program is brought to every host (by scpc here), v1 installed
    let first = scpc(0, 16, "installed");
    println!("first scpc deploy (brings the node program), concurrency 16: {first:.2} s");
    println!("| hosts | concurrency / forks | scpc wall (s) | ansible wall (s) | scpc hosts/s | ansible hosts/s |");
    println!("|---|---|---|---|---|---|");
    let row = |label: &str, s: f64, a: f64| {
        println!("| {n} | {label} | {s:.2} | {a:.2} | {:.1} | {:.1} |", n as f64 / s, n as f64 / a);
    };
    // every scpc run puts v2 where Ansible left v1, every Ansible run puts v1 back
    let held = 0;
    for c in [1usize, 4, 8, 16, 32] {
        let s = scpc(1 - held, c, "installed");
        let a = ansible(held, c, 1);
        row(&c.to_string(), s, a);
        for node in &fleet.nodes {
            assert_eq!(node.file("fleet.bpf"), Some(bpf(&versions[held])), "{} holds what ansible installed", node.name);
        }
    }
    let s = scpc(held, 16, "unchanged");
    let a = ansible(held, 16, 0);
    row("16, no change", s, a);
}
