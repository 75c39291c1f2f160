//! The stdlib service policies, proven on the real programs: each service runs under
//! `scpc exec` with its compiled policy, serves a real workload on loopback (which must
//! succeed), and then attacker code inside the service process (an LD_PRELOADed thread, the
//! stand-in for an exploited bug) tries a forbidden action, which must be stopped: the process
//! is killed by SIGSYS and the action leaves no trace.
//!
//! The programs come from Debian packages that `.ci/run` installs (nginx-light, redis-server,
//! redis-tools, mosquitto, mosquitto-clients, python3, curl).

use std::net::TcpStream;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SCPC: &str = env!("CARGO_BIN_EXE_scpc");

struct Service {
    dir: PathBuf,
    child: Child,
}

impl Drop for Service {
    /// Kills the service's whole process group: nginx's workers outlive their master, and a
    /// worker left holding the port would answer the next run's `wait_for_port`.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // the group `start` made, led by the child
        let _ = Command::new("kill").args(["-9", "--", &format!("-{}", self.child.id())]).status();
    }
}

fn workdir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("scpc-service-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("www")).expect("temp dir");
    std::fs::write(dir.join("www/index.html"), "hello from the edge\n").expect("index");
    dir
}

/// Builds the policy for this machine and the attacker library into `dir`.
fn prepare(dir: &Path, file: &str, policy: &str) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../stdlib-policies/services").join(file);
    let out = Command::new(SCPC)
        // (services/*.scp include ../edge-baseline.scp: the library's top is an include directory)
        .args(["build", "-I", concat!(env!("CARGO_MANIFEST_DIR"), "/../stdlib-policies")])
        .args([&*src.to_string_lossy(), "--policy", policy, "--target", "x86_64", "-o", &dir.to_string_lossy()])
        .output()
        .expect("scpc build");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let attack = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/services/attack.c");
    let so = dir.join("attack.so");
    let st = Command::new("cc").args(["-shared", "-fPIC", "-O1", "-o"]).arg(&so).arg(&attack).arg("-lpthread").status().expect("cc");
    assert!(st.success());
    dir.join(format!("{policy}.x86_64.bpf"))
}

/// Starts `cmd` under the filter, with the attacker thread armed for `attack`.
fn start(dir: &Path, filter: &Path, attack: &str, cmd: &[&str]) -> Service {
    let mut c = Command::new(SCPC);
    c.current_dir(dir).arg("exec").arg(filter).arg("--").arg("/usr/bin/env");
    c.arg(format!("LD_PRELOAD={}", dir.join("attack.so").display()));
    c.arg(format!("SCPC_ATTACK={attack}"));
    c.arg(format!("SCPC_ATTACK_TRIGGER={}", dir.join("trigger").display()));
    std::os::unix::process::CommandExt::process_group(&mut c, 0);
    c.args(cmd).stdin(Stdio::null()).stdout(Stdio::null()).stderr(std::fs::File::create(dir.join("service.log")).expect("log"));
    Service { dir: dir.to_path_buf(), child: c.spawn().expect("scpc exec") }
}

fn wait_for_port(s: &mut Service, port: u16) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(status)) = s.child.try_wait() {
            panic!("the service ended before listening: {status:?}\n{}", log(s));
        }
        assert!(Instant::now() < deadline, "port {port} never opened\n{}", log(s));
        std::thread::sleep(Duration::from_millis(50));
    }
    // the listener is ours, not a leftover of another run
    assert!(matches!(s.child.try_wait(), Ok(None)), "the service ended: port {port} is someone else's\n{}", log(s));
}

fn log(s: &Service) -> String {
    std::fs::read_to_string(s.dir.join("service.log")).unwrap_or_default()
}

/// Pulls the trigger and expects the service killed by SIGSYS with no evidence left.
fn attack_is_stopped(mut s: Service, what: &str) {
    std::fs::write(s.dir.join("trigger"), "").expect("trigger");
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(st) = s.child.try_wait().expect("wait") {
            break st;
        }
        assert!(Instant::now() < deadline, "{what}: the service outlived the attack\n{}", log(&s));
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.signal(), Some(libc::SIGSYS), "{what}: {status:?}\n{}", log(&s));
    let evidence = std::fs::read_to_string(s.dir.join("trigger.out")).unwrap_or_default();
    assert!(evidence.is_empty(), "{what} was not stopped: {evidence}");
}

/// The pids whose parent is `pid`.
fn children(pid: u32) -> Vec<i32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else { continue };
        // pid (comm) state ppid ...
        let ppid = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().nth(1)).and_then(|p| p.parse::<u32>().ok());
        if ppid == Some(pid) {
            out.extend(e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()));
        }
    }
    out
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().expect("workload runs");
    assert!(
        out.status.success(),
        "{cmd:?}: {:?}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn curl(port: u16) -> String {
    run(Command::new("curl").args(["-sS", "--max-time", "30", &format!("http://127.0.0.1:{port}/index.html")]))
}

#[test]
fn nginx_serves_and_cannot_ptrace() {
    let dir = workdir("nginx");
    let filter = prepare(&dir, "nginx.scp", "nginx");
    let port = 18431;
    let d = dir.display();
    let conf = format!(
        "daemon off;\nmaster_process on;\nworker_processes 2;\nuser nobody nogroup;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\n\
         events {{ worker_connections 64; }}\nhttp {{\n access_log {d}/access.log;\n client_body_temp_path {d}/body;\n\
         proxy_temp_path {d}/proxy;\n fastcgi_temp_path {d}/fcgi;\n uwsgi_temp_path {d}/uwsgi;\n scgi_temp_path {d}/scgi;\n\
         server {{ listen 127.0.0.1:{port}; root {d}/www; }}\n}}\n"
    );
    std::fs::write(dir.join("nginx.conf"), conf).expect("conf");
    let conf = dir.join("nginx.conf");
    let mut s = start(&dir, &filter, "ptrace", &["nginx", "-c", &conf.to_string_lossy(), "-e", &format!("{d}/error.log")]);
    wait_for_port(&mut s, port);
    for _ in 0..50 {
        assert_eq!(curl(port), "hello from the edge\n");
    }
    // the workers outlive a killed master: stop them whatever happens
    struct Reap(Vec<i32>);
    impl Drop for Reap {
        fn drop(&mut self) {
            for pid in &self.0 {
                let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            }
        }
    }
    let _workers = Reap(children(s.child.id()));
    assert_eq!(_workers.0.len(), 2, "two workers forked under the filter");
    attack_is_stopped(s, "ptrace from the nginx master");
}

#[test]
fn redis_serves_and_cannot_spawn_a_shell() {
    let dir = workdir("redis");
    let filter = prepare(&dir, "redis.scp", "redis");
    let port = "16431";
    let d = dir.to_string_lossy().into_owned();
    let mut s = start(
        &dir,
        &filter,
        "shell",
        &["redis-server", "--port", port, "--save", "", "--appendonly", "no", "--dir", &d, "--daemonize", "no"],
    );
    wait_for_port(&mut s, 16431);
    let bench = run(Command::new("redis-benchmark").args(["-p", port, "-n", "5000", "-c", "8", "-q", "-t", "set,get,lpush,lpop"]));
    assert_eq!(bench.matches("requests per second").count(), 4, "{bench}");
    run(Command::new("redis-cli").args(["-p", port, "set", "edge", "ok"]));
    assert_eq!(run(Command::new("redis-cli").args(["-p", port, "get", "edge"])), "ok\n");
    attack_is_stopped(s, "a shell spawned by redis-server");
}

#[test]
fn mosquitto_brokers_and_cannot_mount() {
    let dir = workdir("mosquitto");
    let filter = prepare(&dir, "mosquitto.scp", "mosquitto");
    let port = "11931";
    let mut s = start(&dir, &filter, "mount", &["mosquitto", "-p", port]);
    wait_for_port(&mut s, 11931);
    // `-d` prints the protocol steps: the readings are published once the broker has
    // acknowledged the subscription (a fixed pause could lose them on a loaded machine);
    // line-buffered, as into a pipe its stdio would hold every line back until it exits
    let mut sub = Command::new("stdbuf")
        .args(["-oL", "mosquitto_sub", "-d", "-p", port, "-t", "plant/line1/temp", "-C", "3", "-W", "60"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("mosquitto_sub");
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(sub.stdout.take().expect("stdout")));
    let mut steps = Vec::new();
    for line in lines.by_ref() {
        let line = line.expect("sub output");
        let subscribed = line.starts_with("Subscribed");
        steps.push(line);
        if subscribed {
            break;
        }
    }
    assert!(steps.last().is_some_and(|l| l.starts_with("Subscribed")), "never subscribed: {steps:?}");
    for i in 1..=3 {
        run(Command::new("mosquitto_pub").args(["-p", port, "-t", "plant/line1/temp", "-q", "1", "-m", &format!("{}", 20 + i)]));
    }
    let readings: Vec<String> = lines.map(|l| l.expect("sub output")).filter(|l| !l.starts_with("Client ")).collect();
    let status = sub.wait().expect("sub");
    assert!(status.success(), "{status:?}: {steps:?} {readings:?}");
    assert_eq!(readings, ["21", "22", "23"]);
    attack_is_stopped(s, "a mount by mosquitto");
}

#[test]
fn python_http_server_serves_and_cannot_spawn_a_shell() {
    let dir = workdir("python");
    let filter = prepare(&dir, "python-http.scp", "python-http");
    let port = 18531;
    let www = dir.join("www");
    let mut s = start(
        &dir,
        &filter,
        "shell",
        &["/usr/bin/python3", "-m", "http.server", &port.to_string(), "--bind", "127.0.0.1", "--directory", &www.to_string_lossy()],
    );
    wait_for_port(&mut s, port);
    for _ in 0..20 {
        assert_eq!(curl(port), "hello from the edge\n");
    }
    attack_is_stopped(s, "a shell spawned by python3 -m http.server");
}
