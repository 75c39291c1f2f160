//! The node side under attack, on the test bed's real sshd nodes (`testbed/mod.rs`): each test
//! is a finding of the review of the earlier POSIX-sh installer, now handled by the node
//! program (`deploy/node`): a nearly full disk, reload and health commands that run long or
//! leave children behind, a session lost in the middle of a job, hostile state files and
//! links planted by another user, 30 deploys to one host at once, a directory at the target, a
//! secret in a failing health command, a file that is not a filter at a new path.

mod testbed;

use std::path::{Path, PathBuf};
use testbed::support::{need, scpc, sha256, Need, TEST_BED};
use testbed::{build_policy, fleet_json, report_host, Fleet, Server, Spec, EDGE};

const SERVICE: &str = "[[service]]\nname = \"edge\"\npolicy = \"fleet\"\npath = \"/srv/edge/fleet.bpf\"\n";

fn artifact(dir: &Path, arch: &str) -> Vec<u8> {
    std::fs::read(dir.join(format!("fleet.{arch}.bpf"))).expect("artifact")
}

/// The node's state file for `/srv/edge/fleet.bpf`, parsed.
fn state(node: &testbed::Node) -> serde_json::Value {
    serde_json::from_slice(&node.file(".scpc/fleet.bpf/state.json").expect("state file")).expect("json")
}

/// The names in the node's deploy directory that are temporary files.
fn temporaries(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for sub in [dir.to_path_buf(), dir.join(".scpc/fleet.bpf")] {
        for e in std::fs::read_dir(&sub).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.contains("scpc-tmp") || name.contains(".tmp") {
                out.push(name);
            }
        }
    }
    out
}

/// Free bytes in `dir`'s file system.
fn free_bytes(dir: &Path) -> u64 {
    let out = testbed::sh(&format!("stat -f -c '%a %S' {}", dir.display()));
    let mut it = out.split_whitespace().map(|n| n.parse::<u64>().expect("number"));
    it.next().expect("blocks") * it.next().expect("size")
}

#[test]
fn a_full_disk_leaves_the_old_filter_its_kept_copy_and_a_true_state() {
    need(&TEST_BED);
    let mut fleet = Fleet::new("full");
    fleet.add("tiny", Spec { edge_tmpfs: Some("8k".into()), ..Spec::default() });
    fleet.add("small", Spec { edge_tmpfs: Some("64k".into()), ..Spec::default() });
    fleet.known_hosts();
    let v1 = build_policy(&fleet, "fleet.scp", "fleet", "v1");
    let mid = build_policy(&fleet, "fleet-mid.scp", "fleet", "mid");
    let (x1, xmid) = (artifact(&v1, "x86_64"), artifact(&mid, "x86_64"));
    assert!((2500..4000).contains(&xmid.len()), "a filter of about 3,000 bytes: {}", xmid.len());
    let rollout = "canary = 0\nmax_failures = 5";
    // 8 KiB cannot hold a filter, its kept copy and the state: refused before anything is written
    let inv = fleet.inventory(&mid, rollout, SERVICE);
    let (code, report, err) = fleet_json("deploy", &inv, &["--host", "tiny"]);
    assert_eq!(code, 2, "{report:#}\n{err}");
    let why = report_host(&report, "tiny")["services"]["edge"]["reason"].as_str().expect("failed").to_string();
    assert!(why.contains("not enough free space") && why.contains("nothing was changed"), "{why}");
    assert!(fleet.nodes[0].file("fleet.bpf").is_none(), "no filter at the path");
    assert!(fleet.nodes[0].file(".scpc/fleet.bpf/state.json").is_none(), "no state claims one");
    // v1 on the 64 KiB one, then the disk filled up to one page
    let inv1 = fleet.inventory(&v1, rollout, SERVICE);
    let (code, report, _) = fleet_json("deploy", &inv1, &["--host", "small"]);
    assert_eq!(code, 0, "{report:#}");
    let small = &fleet.nodes[1];
    let room = free_bytes(&small.dir).saturating_sub(4096);
    testbed::sh(&format!("head -c {room} /dev/zero > {}/filler", small.dir.display()));
    assert!(free_bytes(&small.dir) <= 4096, "{} bytes free", free_bytes(&small.dir));
    let inv_mid = fleet.inventory(&mid, rollout, SERVICE);
    let (code, report, _) = fleet_json("deploy", &inv_mid, &["--host", "small"]);
    assert_eq!(code, 2, "{report:#}");
    let why = report_host(&report, "small")["services"]["edge"]["reason"].as_str().expect("failed").to_string();
    assert!(why.contains("not enough free space"), "{why}");
    assert_eq!(small.file("fleet.bpf"), Some(x1.clone()), "the old filter is whole at the path");
    let kept = small.file(&format!(".scpc/fleet.bpf/{}.bpf", sha256(&x1))).expect("the kept copy of v1");
    assert_eq!(kept, x1, "its kept copy is whole");
    let st = state(small);
    assert_eq!(st["history"][0]["sha256"], sha256(&x1), "the state says v1");
    assert!(st.get("pending").is_none(), "{st:#}");
    assert!(temporaries(&small.dir).is_empty(), "{:?}", temporaries(&small.dir));
    // with room again the new filter goes in, and rollback finds v1's copy intact
    std::fs::remove_file(small.dir.join("filler")).expect("filler");
    assert_eq!(fleet_json("deploy", &inv_mid, &["--host", "small"]).0, 0);
    assert_eq!(small.file("fleet.bpf"), Some(xmid));
    let (code, report, _) = fleet_json("rollback", &inv_mid, &["--host", "small"]);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(small.file("fleet.bpf"), Some(x1));
}

#[test]
fn each_command_has_its_own_time_limit_and_a_timed_out_check_is_rolled_back() {
    need(&TEST_BED);
    let mut fleet = Fleet::new("slow");
    fleet.add("s", Spec::default());
    fleet.known_hosts();
    let v1 = build_policy(&fleet, "fleet.scp", "fleet", "v1");
    let v2 = build_policy(&fleet, "fleet-v2.scp", "fleet", "v2");
    let (x1, x2) = (artifact(&v1, "x86_64"), artifact(&v2, "x86_64"));
    let node = &fleet.nodes[0];
    // two commands of 3.5 s each under a 6 s limit: each within its own limit, the whole longer
    let steady =
        format!("{SERVICE}reload = \"sleep 3.5; echo reloaded >> {EDGE}/reloads\"\nhealth = \"sleep 3.5; touch {EDGE}/healthy\"\n");
    let inv = fleet.inventory(&v1, "command_timeout = 6", &steady);
    let (code, report, err) = fleet_json("deploy", &inv, &[]);
    assert_eq!(code, 0, "{report:#}\n{err}");
    assert_eq!(report_host(&report, "s")["services"]["edge"]["result"], "installed");
    assert!(node.file("reloads").is_some() && node.file("healthy").is_some(), "both commands ran to their end");
    // a reload that leaves a child holding its output open does not hold the deploy (were it
    // waited for, the reload would run into its 5 s limit and the install be rolled back)
    let daemon = format!("{SERVICE}reload = \"sleep 600 &\"\n");
    let inv = fleet.inventory(&v2, "command_timeout = 5", &daemon);
    let (code, report, _) = fleet_json("deploy", &inv, &[]);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report_host(&report, "s")["services"]["edge"]["result"], "installed", "{report:#}");
    assert_eq!(node.file("fleet.bpf"), Some(x2.clone()));
    // a health check past the limit is killed and the host rolled back to what it held
    let stuck = format!("{SERVICE}reload = \"echo reloaded >> {EDGE}/reloads\"\nhealth = \"sleep 30\"\n");
    let inv = fleet.inventory(&v1, "command_timeout = 4", &stuck);
    let reloads_before = node.file("reloads").map_or(0, |r| r.len());
    let (code, report, _) = fleet_json("deploy", &inv, &[]);
    assert_eq!(code, 2, "{report:#}");
    let edge = &report_host(&report, "s")["services"]["edge"];
    assert_eq!(edge["result"], "rolled_back", "{edge:#}");
    assert_eq!(edge["failure"]["step"], "health");
    assert_eq!(edge["failure"]["status"]["timed_out"], 4);
    assert_eq!(edge["to"], sha256(&x2), "the report says what the host holds");
    assert_eq!(node.file("fleet.bpf"), Some(x2.clone()), "and it does");
    assert!(node.file("reloads").map_or(0, |r| r.len()) > reloads_before + "reloaded\n".len(), "reloaded again after the rollback");
    let (code, out, _) = scpc(&["status", inv.to_str().expect("utf-8"), "--json"]);
    let status: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(report_host(&status, "s")["services"]["edge"]["recorded"], sha256(&x2), "{status:#}");
    assert_eq!(code, 2, "v1 is the local build, the host holds v2: outdated");
    drop(x1);
}

#[test]
fn a_session_lost_mid_job_is_followed_by_a_look_at_what_the_host_holds() {
    session_lost_mid_job(Server::OpenSsh);
}

/// The same on dropbear (the usual SSH server of ARM gateways): its sessions die the same way,
/// and the deployer connects again and looks the same way.
#[test]
fn a_session_lost_mid_job_on_dropbear_is_followed_by_the_same_look() {
    need(&[Need::File("/usr/sbin/dropbear")]);
    session_lost_mid_job(Server::Dropbear);
}

/// A deploy whose session is cut while the health check runs, once with a sick service (the
/// deployer connects again and rolls back) and once with a healthy one (it connects again and
/// finds the install done).
fn session_lost_mid_job(server: Server) {
    need(&TEST_BED);
    let mut fleet = Fleet::new(&format!("lost-{server:?}"));
    fleet.add("l", Spec { server, ..Spec::default() });
    fleet.known_hosts();
    let v1 = build_policy(&fleet, "fleet.scp", "fleet", "v1");
    let v2 = build_policy(&fleet, "fleet-v2.scp", "fleet", "v2");
    let (x1, x2) = (artifact(&v1, "x86_64"), artifact(&v2, "x86_64"));
    let node = &fleet.nodes[0];
    let service = format!("{SERVICE}health = \"touch {EDGE}/checking; sleep 3; test ! -e {EDGE}/sick\"\n");
    assert_eq!(fleet_json("deploy", &fleet.inventory(&v1, "", &service), &[]).0, 0);
    for (sick, want, result) in [(true, &x1, "rolled_back"), (false, &x2, "installed")] {
        if sick {
            std::fs::write(node.dir.join("sick"), "").expect("sick");
        } else {
            let _ = std::fs::remove_file(node.dir.join("sick"));
        }
        let _ = std::fs::remove_file(node.dir.join("checking"));
        let inv = fleet.inventory(&v2, "command_timeout = 10", &service);
        let child = std::process::Command::new(testbed::support::SCPC)
            .args(["deploy", inv.to_str().expect("utf-8"), "--json"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("scpc deploy");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while !node.dir.join("checking").exists() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        assert!(node.dir.join("checking").exists(), "the health check started");
        assert!(node.kill_sessions() > 0, "the session was cut ({server:?})");
        let out = child.wait_with_output().expect("scpc ends");
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
        let h = report_host(&report, "l");
        assert_eq!(h["services"]["edge"]["result"], result, "{server:?}, sick = {sick}: {h:#}");
        assert_eq!(node.file("fleet.bpf").as_ref(), Some(want), "sick = {sick}");
        let text = serde_json::to_string(h).expect("json");
        assert!(text.contains("connected again"), "{text}");
        if sick {
            assert_eq!(h["services"]["edge"]["to"], sha256(&x1), "what the host holds, read back");
            assert_eq!(out.status.code(), Some(2));
        } else {
            assert_eq!(out.status.code(), Some(0), "{h:#}");
        }
    }
}

/// Runs `cmd` on this machine as uid/gid 4242 (another user than the node program's).
fn as_other_user(cmd: &str) {
    testbed::sh(&format!("setpriv --reuid 4242 --regid 4242 --clear-groups sh -c '{cmd}'"));
}

#[test]
fn links_and_state_files_planted_by_another_user_are_refused_untouched() {
    need(&TEST_BED);
    let mut fleet = Fleet::new("hostile");
    for i in 0..4 {
        fleet.add(&format!("h{i}"), Spec::default());
    }
    fleet.known_hosts();
    let v1 = build_policy(&fleet, "fleet.scp", "fleet", "v1");
    let x1 = artifact(&v1, "x86_64");
    let victim = fleet.root.join("victim");
    std::fs::write(&victim, "precious\n").expect("victim");
    let pwned = fleet.root.join("pwned");
    for n in &fleet.nodes {
        // the install directory belongs to the service's user
        testbed::sh(&format!("chown 4242:4242 {d} && chmod 755 {d} && chmod 755 {r}", d = n.dir.display(), r = fleet.root.display()));
    }
    let sha = sha256(&x1);
    // h0: the user made the node's own directory, with a state whose digests are commands and
    // links where kept copies and temporary files go
    let hostile_state = format!(
        "{{\"path\": \"/srv/edge/fleet.bpf\", \"history\": [{{\"sha256\": \"$(touch {p})\", \"policy\": \"x\", \"arch\": \"x86_64\", \"manifest_sha256\": \"\", \"compiler\": \"\", \"time\": \"\", \"operator\": \"\"}}]}}",
        p = pwned.display()
    );
    std::fs::write(fleet.root.join("state.json"), &hostile_state).expect("state");
    testbed::sh(&format!("chmod 644 {}/state.json", fleet.root.display()));
    let d0 = fleet.nodes[0].dir.display().to_string();
    as_other_user(&format!(
        "mkdir -p {d0}/.scpc/fleet.bpf && cp {root}/state.json {d0}/.scpc/fleet.bpf/state.json && ln -s {v} {d0}/.scpc/fleet.bpf/{sha}.bpf && ln -s {v} {d0}/.scpc/fleet.bpf/.{sha}.tmp",
        root = fleet.root.display(),
        v = victim.display()
    ));
    // h1: a link at the install path itself
    as_other_user(&format!("ln -s {} {}/fleet.bpf", victim.display(), fleet.nodes[1].dir.display()));
    // h2: the node's directory for the path is a link to another directory holding filters
    let elsewhere = fleet.root.join("elsewhere");
    std::fs::create_dir_all(&elsewhere).expect("elsewhere");
    std::fs::write(elsewhere.join("keep-me.bpf"), "x").expect("file");
    testbed::sh(&format!("chmod 777 {}", elsewhere.display()));
    as_other_user(&format!(
        "mkdir -p {d}/.scpc && ln -s {e} {d}/.scpc/fleet.bpf",
        d = fleet.nodes[2].dir.display(),
        e = elsewhere.display()
    ));
    let inv = fleet.inventory(&v1, "canary = 0\nmax_failures = 10", SERVICE);
    let (code, report, _) = fleet_json("deploy", &inv, &[]);
    assert_eq!(code, 2, "{report:#}");
    for (name, needle) in [("h0", "belongs to uid 4242"), ("h1", "symbolic link"), ("h2", "belongs to uid 4242")] {
        let why = report_host(&report, name)["services"]["edge"]["reason"].as_str().unwrap_or_default().to_string();
        assert!(why.contains(needle), "{name}: {why}");
    }
    assert_eq!(std::fs::read_to_string(&victim).expect("victim"), "precious\n", "nothing written through a link");
    assert!(!pwned.exists(), "nothing in a state file was run");
    assert_eq!(std::fs::read_dir(&elsewhere).expect("elsewhere").count(), 1, "nothing deleted elsewhere");
    assert!(fleet.nodes[1].dir.join("fleet.bpf").is_symlink());
    // h3 deployed fine: its own directories are root's, 0700, and a damaged state is refused
    assert_eq!(report_host(&report, "h3")["services"]["edge"]["result"], "installed", "{report:#}");
    let own = fleet.nodes[3].dir.join(".scpc/fleet.bpf");
    let mode = testbed::sh(&format!("stat -c '%u %a' {}", own.display()));
    assert_eq!(mode.trim(), "0 700");
    // root hand-edits the state with a command for a digest: refused as damaged, nothing run
    std::fs::write(own.join("state.json"), &hostile_state).expect("state");
    let v2 = build_policy(&fleet, "fleet-v2.scp", "fleet", "v2");
    let (code, report, _) = fleet_json("deploy", &fleet.inventory(&v2, "canary = 0\nmax_failures = 10", SERVICE), &["--host", "h3"]);
    assert_eq!(code, 2);
    let why = report_host(&report, "h3")["services"]["edge"]["reason"].as_str().unwrap_or_default().to_string();
    assert!(why.contains("state file is damaged") && why.contains("nothing was changed"), "{why}");
    assert_eq!(fleet.nodes[3].file("fleet.bpf"), Some(x1.clone()));
    assert!(!pwned.exists());
    // once the state is gone, a link left where a kept copy goes is replaced, not followed
    std::fs::remove_file(own.join("state.json")).expect("state");
    let x2 = artifact(&v2, "x86_64");
    std::os::unix::fs::symlink(&victim, own.join(format!("{}.bpf", sha256(&x2)))).expect("link");
    let (code, report, _) = fleet_json("deploy", &fleet.inventory(&v2, "canary = 0", SERVICE), &["--host", "h3"]);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(std::fs::read_to_string(&victim).expect("victim"), "precious\n");
    let kept = own.join(format!("{}.bpf", sha256(&x2)));
    assert!(!kept.is_symlink() && std::fs::read(&kept).expect("kept") == x2);
}

#[test]
fn thirty_deploys_at_once_to_one_host_leave_target_state_and_copies_agreeing() {
    need(&TEST_BED);
    let mut fleet = Fleet::new("race");
    fleet.add("r", Spec::default());
    fleet.known_hosts();
    let v1 = build_policy(&fleet, "fleet.scp", "fleet", "v1");
    let v2 = build_policy(&fleet, "fleet-v2.scp", "fleet", "v2");
    let node = &fleet.nodes[0];
    // the node program in place first, so that the rounds race on the filter, not on it
    assert_eq!(fleet_json("deploy", &fleet.inventory(&v1, "", SERVICE), &[]).0, 0);
    // 30 inventories, each naming the host differently, alternating v1 and v2
    // (30 debug deployers on 2 cores, installs serialised by the lock, whose wait is the
    // command limit: generous limits, so that only a real disagreement fails the test)
    let base = std::fs::read_to_string(fleet.inventory(&v1, "connect_timeout = 60\ncommand_timeout = 120", SERVICE)).expect("inventory");
    let invs: Vec<PathBuf> = (0..30)
        .map(|i| {
            let art = if i % 2 == 0 { &v2 } else { &v1 };
            let text =
                base.replace(&v1.display().to_string(), &art.display().to_string()).replace("name = \"r\"", &format!("name = \"r{i}\""));
            let path = fleet.root.join(format!("race-{i}.toml"));
            std::fs::write(&path, text).expect("inventory");
            path
        })
        .collect();
    let children: Vec<_> = invs
        .iter()
        .map(|inv| {
            std::process::Command::new(testbed::support::SCPC)
                .args(["deploy", inv.to_str().expect("utf-8"), "--json", "--operator", "racer"])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("scpc deploy")
        })
        .collect();
    let mut results = Vec::new();
    for c in children {
        let out = c.wait_with_output().expect("scpc ends");
        let report: serde_json::Value =
            serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
        assert_eq!(out.status.code(), Some(0), "{report:#}");
        results.push(report["hosts"][0]["services"]["edge"]["result"].as_str().expect("result").to_string());
    }
    assert!(results.iter().filter(|r| *r == "installed").count() >= 2, "{results:?}");
    let target = node.file("fleet.bpf").expect("a filter");
    assert!(target == artifact(&v1, "x86_64") || target == artifact(&v2, "x86_64"));
    let st = state(node);
    assert!(st.get("pending").is_none(), "{st:#}");
    let history: Vec<&str> = st["history"].as_array().expect("history").iter().map(|d| d["sha256"].as_str().expect("sha")).collect();
    assert_eq!(history[0], sha256(&target), "the state says what the path holds: {st:#}");
    let mut unique = history.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), history.len(), "no entry twice: {history:?}");
    for sha in &history {
        let kept = node.file(&format!(".scpc/fleet.bpf/{sha}.bpf")).expect("kept copy");
        assert_eq!(sha256(&kept), *sha);
    }
    assert!(temporaries(&node.dir).is_empty(), "{:?}", temporaries(&node.dir));
}

#[test]
fn a_directory_or_a_link_at_the_target_is_refused() {
    need(&TEST_BED);
    let mut fleet = Fleet::new("dirtarget");
    fleet.add("d", Spec::default());
    fleet.add("l", Spec::default());
    fleet.known_hosts();
    let v1 = build_policy(&fleet, "fleet.scp", "fleet", "v1");
    std::fs::create_dir_all(fleet.nodes[0].dir.join("fleet.bpf")).expect("dir");
    std::fs::write(fleet.nodes[0].dir.join("fleet.bpf/inside"), "x").expect("file");
    let other = fleet.root.join("other");
    std::fs::create_dir_all(&other).expect("other");
    std::os::unix::fs::symlink(&other, fleet.nodes[1].dir.join("fleet.bpf")).expect("link");
    let (code, report, _) = fleet_json("deploy", &fleet.inventory(&v1, "canary = 0\nmax_failures = 5", SERVICE), &[]);
    assert_eq!(code, 2, "{report:#}");
    let why = |n: &str| report_host(&report, n)["services"]["edge"]["reason"].as_str().unwrap_or_default().to_string();
    assert!(why("d").contains("is a directory, not a regular file"), "{}", why("d"));
    assert!(why("l").contains("is a symbolic link"), "{}", why("l"));
    let inside: Vec<_> = std::fs::read_dir(fleet.nodes[0].dir.join("fleet.bpf")).expect("dir").flatten().map(|e| e.file_name()).collect();
    assert_eq!(inside, ["inside"], "nothing dropped inside the directory");
    assert_eq!(std::fs::read_dir(&other).expect("other").count(), 0, "nothing written through the link");
}

#[test]
fn a_failing_health_command_is_reported_without_its_text() {
    need(&TEST_BED);
    let mut fleet = Fleet::new("secret");
    fleet.add("s", Spec::default());
    fleet.known_hosts();
    let v1 = build_policy(&fleet, "fleet.scp", "fleet", "v1");
    let v2 = build_policy(&fleet, "fleet-v2.scp", "fleet", "v2");
    assert_eq!(fleet_json("deploy", &fleet.inventory(&v1, "", SERVICE), &[]).0, 0);
    let service = format!(
        "{SERVICE}health = \"curl -s -H 'Authorization: Bearer s3cr3t-t0ken' --user admin:hunter2 http://127.0.0.1:1/ ; head -c 20000 /dev/zero | tr '\\\\\\\\0' x >&2; echo 'service is down' >&2; exit 7\"\n"
    );
    let inv = fleet.inventory(&v2, "", &service);
    for json in [true, false] {
        let args = if json { vec!["deploy", inv.to_str().expect("utf-8"), "--json"] } else { vec!["deploy", inv.to_str().expect("utf-8")] };
        let (code, out, err) = scpc(&args);
        assert_eq!(code, 2, "{out}\n{err}");
        for secret in ["s3cr3t", "hunter2", "Authorization", "curl"] {
            assert!(!out.contains(secret) && !err.contains(secret), "`{secret}` printed:\n{out}\n{err}");
        }
        assert!(out.contains("health exited 7") && out.contains("service is down"), "{out}");
        if json {
            let report: serde_json::Value = serde_json::from_str(&out).expect("json");
            let edge = &report_host(&report, "s")["services"]["edge"];
            assert_eq!(edge["failure"]["status"]["exited"], 7);
            assert!(edge["failure"]["stderr"].as_str().expect("stderr").len() <= 512, "a bounded excerpt");
        }
    }
    assert_eq!(fleet.nodes[0].file("fleet.bpf"), Some(artifact(&v1, "x86_64")));
}

#[test]
fn a_file_that_is_no_filter_at_a_new_path_needs_force() {
    need(&TEST_BED);
    let mut fleet = Fleet::new("force");
    fleet.add("f", Spec::default());
    fleet.known_hosts();
    let v1 = build_policy(&fleet, "fleet.scp", "fleet", "v1");
    let node = &fleet.nodes[0];
    std::fs::write(node.dir.join("fleet.bpf"), "not a filter\n").expect("file");
    let inv = fleet.inventory(&v1, "", SERVICE);
    let (code, report, _) = fleet_json("deploy", &inv, &[]);
    assert_eq!(code, 2);
    let why = report_host(&report, "f")["services"]["edge"]["reason"].as_str().unwrap_or_default().to_string();
    assert!(why.contains("is not a seccomp filter") && why.contains("--force"), "{why}");
    assert_eq!(node.file("fleet.bpf").as_deref(), Some(&b"not a filter\n"[..]));
    let (code, report, _) = fleet_json("deploy", &inv, &["--force"]);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(state(node)["history"][1]["policy"], "(found on host)");
    assert_eq!(fleet_json("rollback", &inv, &[]).0, 0);
    assert_eq!(node.file("fleet.bpf").as_deref(), Some(&b"not a filter\n"[..]), "the file found there is back");
}

#[test]
fn inventories_that_deploy_nowhere_or_anywhere_are_refused() {
    let dir = std::env::temp_dir().join(format!("scpc-inv-safety-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let host = |name: &str| format!("[[host]]\nname = \"{name}\"\naddress = \"10.0.0.1\"\nidentity = \"k\"\nknown_hosts = \"kh\"\n");
    let service = "[[service]]\nname = \"s\"\npolicy = \"p\"\npath = \"/etc/scpc/p.bpf\"\n";
    for (text, code, at) in [
        (service.to_string(), "scpc::inventory::no_host", "bad.toml:1:1"),
        (format!("{}{}hosts = []\n", host("a"), service), "scpc::inventory::empty_hosts", "bad.toml:10:9"),
        (format!("{}{}{service}", host("a"), host("b")), "scpc::inventory::shared_address", "bad.toml:8:11"),
        (format!("{}{}", host("a"), service.replace("/etc/scpc/p.bpf", "/etc/passwd")), "scpc::inventory::outside_root", "bad.toml:9:8"),
    ] {
        let inv = dir.join("bad.toml");
        std::fs::write(&inv, &text).expect("write");
        let (status, out, err) = scpc(&["deploy", inv.to_str().expect("utf-8")]);
        assert_eq!(status, 1, "{text}\n{out}");
        assert!(err.contains(code) && err.contains(at) && err.contains("help"), "{text}\n{err}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
