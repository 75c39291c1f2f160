//! The fleet case of `scpc generate`: trace a program on an x86 box, deploy to ARM gateways.
//! curl fetching a page over loopback is traced with `strace -f` on this machine (x86_64), the
//! draft is generated for aarch64 (each traced call carried to the calls of its syscall families
//! there: `access` is `faccessat`, `poll` is `ppoll`...), built, and the same curl (Debian's,
//! the same release for both architectures: the arm64 package and its libraries, downloaded
//! through `.ci/apt-private`) fetches a page over loopback from busybox's httpd on the test bed's
//! real aarch64 node, under that filter: it succeeds. A control run under the draft with the
//! mapped `ppoll` rule taken out is killed with SIGSYS, so the filter is seen enforced on the
//! node's kernel and the mapping seen needed.

mod testbed;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use testbed::support::{need, scpc_in, Need, TEST_BED};
use testbed::{Fleet, Node, VmArch};

const PAGE: &str = "hello over loopback\n";

/// Where downloads and builds for the node are kept between runs: as the VM images are.
fn cache() -> PathBuf {
    std::env::var_os("SCPC_TESTBED_CACHE").map_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")), PathBuf::from)
}

fn sh(cmd: &str) -> String {
    let out = Command::new("sh").arg("-c").arg(cmd).output().expect("sh runs");
    assert!(out.status.success(), "`{cmd}` failed:\n{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Debian's arm64 curl with the libraries it needs beyond the C library (which the node has):
/// `bin/curl` and `lib/*.so*` in a gzipped tar, downloaded and put together once.
fn arm64_curl() -> PathBuf {
    let cache = cache();
    std::fs::create_dir_all(&cache).expect("cache dir");
    let tar = cache.join("curl-arm64.tar.gz");
    // the node builder's lock: both use the arm64 package lists of apt-aarch64
    let lock = std::fs::File::create(cache.join("vm-aarch64.lock")).expect("lock file");
    lock.lock().expect("lock");
    if tar.exists() {
        return tar;
    }
    let work = cache.join(format!("curl-arm64.work.{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(work.join("debs")).expect("work dir");
    let apt = format!(
        "{}/../.ci/apt-private {} \"$suite,$suite-updates,$suite-security\" amd64,arm64",
        env!("CARGO_MANIFEST_DIR"),
        cache.join("apt-aarch64").display()
    );
    let suite = "suite=$(. /etc/os-release && echo \"${VERSION_CODENAME:-bookworm}\")";
    let packages = sh(&format!(
        "{suite}; {apt} apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts --no-breaks --no-replaces --no-enhances curl:arm64 | grep -E '^[a-z0-9].*:arm64$' | sort -u"
    ));
    let packages: Vec<&str> = packages.lines().collect();
    assert!(packages.contains(&"curl:arm64") && packages.contains(&"libcurl4:arm64"), "{packages:?}");
    sh(&format!("{suite}; cd {} && {apt} apt-get download -q {} >/dev/null", work.join("debs").display(), packages.join(" ")));
    // each package apart, so that the C library's files can be told from the others
    let x = work.join("x");
    sh(&format!(
        "cd {} && for d in *.deb; do mkdir -p {x}/\"${{d%%_*}}\" && dpkg-deb -x \"$d\" {x}/\"${{d%%_*}}\"; done",
        work.join("debs").display(),
        x = x.display()
    ));
    let root = work.join("root");
    std::fs::create_dir_all(root.join("bin")).expect("root");
    std::fs::create_dir_all(root.join("lib")).expect("root");
    std::fs::copy(x.join("curl/usr/bin/curl"), root.join("bin/curl")).expect("curl binary");
    let dirs: Vec<PathBuf> = std::fs::read_dir(&x)
        .expect("extracted")
        .flatten()
        .flat_map(|p| ["usr/lib/aarch64-linux-gnu", "lib/aarch64-linux-gnu"].map(|d| p.path().join(d)))
        .filter(|d| d.is_dir())
        .collect();
    let from_libc =
        |name: &str| ["usr/lib/aarch64-linux-gnu", "lib/aarch64-linux-gnu"].iter().any(|d| x.join("libc6").join(d).join(name).exists());
    let mut todo = vec![root.join("bin/curl")];
    let mut have = std::collections::BTreeSet::new();
    while let Some(file) = todo.pop() {
        let dynamic = sh(&format!("readelf -d {}", file.display()));
        for line in dynamic.lines().filter(|l| l.contains("(NEEDED)")) {
            let name = line.rsplit('[').next().and_then(|r| r.strip_suffix(']')).expect("a NEEDED entry").to_string();
            if from_libc(&name) || !have.insert(name.clone()) {
                continue;
            }
            let found = dirs
                .iter()
                .map(|d| d.join(&name))
                .find(|p| p.exists())
                .unwrap_or_else(|| panic!("{name}, needed by curl, is in none of {packages:?}"));
            let to = root.join("lib").join(&name);
            std::fs::copy(&found, &to).expect("copy a library");
            todo.push(to);
        }
    }
    sh(&format!("tar -czf {}.tmp -C {} bin lib && mv {}.tmp {}", tar.display(), root.display(), tar.display(), tar.display()));
    let _ = std::fs::remove_dir_all(&work);
    tar
}

/// `under` (tests/cross_arch/under.c) for aarch64, static.
fn under() -> PathBuf {
    let out = cache().join("under-aarch64");
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cross_arch/under.c");
    sh(&format!("aarch64-linux-gnu-gcc -static -O2 -Wall -o {out}.tmp {} && mv {out}.tmp {out}", src.display(), out = out.display()));
    out
}

/// Copies `local` to `remote` on the node (mode 755).
fn push(node: &Node, local: &Path, remote: &str) {
    let bytes = std::fs::read(local).expect("a file to push");
    let mut child = node
        .ssh_command(&format!("cat > {remote} && chmod 755 {remote}"))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("ssh runs");
    child.stdin.take().expect("stdin").write_all(&bytes).expect("send");
    assert!(child.wait().expect("ssh").success(), "pushing {}", local.display());
}

/// Waits until something listens on 127.0.0.1:`port` of this machine.
fn wait_for_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on port {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn scpc(dir: &Path, args: &[&str]) -> String {
    let (code, out, err) = scpc_in(dir, args);
    assert_eq!(code, 0, "scpc {args:?}:\n{out}{err}");
    err
}

#[test]
fn a_curl_trace_from_x86_64_runs_curl_on_a_real_aarch64_kernel() {
    need(&TEST_BED);
    need(&[
        Need::Program("strace"),
        Need::Program("curl"),
        Need::File("/usr/bin/python3"),
        Need::Program("aarch64-linux-gnu-gcc"),
        Need::Program("qemu-system-aarch64"),
        Need::Program("dpkg-deb"),
        Need::Program("readelf"),
    ]);
    let dir = std::env::temp_dir().join(format!("scpc-cross-draft-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("www")).expect("dir");
    std::fs::write(dir.join("www/index.html"), PAGE).expect("page");

    // 1. the trace, on this machine
    let port = testbed::free_port();
    let mut server = Command::new("/usr/bin/python3")
        .args(["-m", "http.server", &port.to_string(), "--bind", "127.0.0.1", "--directory"])
        .arg(dir.join("www"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("python3 http.server");
    wait_for_port(port);
    let url = format!("http://127.0.0.1:{port}/index.html");
    let traced =
        Command::new("strace").current_dir(&dir).args(["-f", "-o", "curl.trace", "curl", "-sS", "-q", &url]).output().expect("strace");
    let _ = server.kill();
    let _ = server.wait();
    assert!(traced.status.success(), "{traced:?}");
    assert_eq!(String::from_utf8_lossy(&traced.stdout), PAGE);

    // 2. the draft for aarch64, and a control without its mapped ppoll rule
    let err = scpc(&dir, &["generate", "curl.trace", "--name", "curl", "--target", "aarch64", "--trace-arch", "x86_64", "-o", "curl.scp"]);
    assert!(err.contains("warning: `arch_prctl`") && err.contains("no equivalent on aarch64"), "{err}");
    let draft = std::fs::read_to_string(dir.join("curl.scp")).expect("draft");
    for carried in ["allow ppoll", "allow faccessat", "allow exit_group"] {
        assert!(draft.lines().any(|l| l.trim_start().starts_with(&format!("{carried} "))), "{carried}:\n{draft}");
    }
    assert!(!draft.contains("allow poll") && !draft.contains("allow access "), "{draft}");
    scpc(&dir, &["check", "--deny-warnings", "curl.scp"]);
    scpc(&dir, &["build", "curl.scp", "-o", "out"]);
    let control: String = draft.lines().filter(|l| !l.trim_start().starts_with("allow ppoll ")).map(|l| format!("{l}\n")).collect();
    std::fs::write(dir.join("control.scp"), control).expect("control");
    scpc(&dir, &["build", "control.scp", "-o", "control"]);

    // 3. the same curl on the node, under the filter
    let curl = arm64_curl();
    let helper = under();
    let mut fleet = Fleet::new("xdraft");
    let idx = fleet.add_vm("gateway", VmArch::Aarch64);
    let node = &fleet.nodes[idx];
    let (code, out) = node.run("mkdir -p /opt/curl /srv/www");
    assert_eq!(code, 0, "{out}");
    let mut child = node.ssh_command("tar -xzf - -C /opt/curl").stdin(Stdio::piped()).spawn().expect("ssh");
    child.stdin.take().expect("stdin").write_all(&std::fs::read(&curl).expect("tar")).expect("send");
    assert!(child.wait().expect("ssh").success());
    push(node, &helper, "/opt/under");
    push(node, &dir.join("out/curl.aarch64.bpf"), "/opt/curl.bpf");
    push(node, &dir.join("control/curl.aarch64.bpf"), "/opt/control.bpf");
    let (code, out) = node.run(&format!("echo '{}' > /srv/www/index.html && httpd -p 127.0.0.1:8080 -h /srv/www", PAGE.trim_end()));
    assert_eq!(code, 0, "{out}");
    let (env, fetch) = ("LD_LIBRARY_PATH=/opt/curl/lib", "/opt/curl/bin/curl -sS -q http://127.0.0.1:8080/index.html");
    let (code, out) = node.run(&format!("uname -m; {env} {fetch}; echo exit=$?"));
    assert_eq!((code, out.as_str()), (0, "aarch64\nhello over loopback\nexit=0\n"), "curl on the node without a filter");
    let (_, out) = node.run(&format!("{env} /opt/under /opt/curl.bpf {fetch}; echo exit=$?"));
    if out != "hello over loopback\nexit=0\n" {
        // what the draft lacks, from an audit-only build of it: the calls the node's kernel logs
        scpc(&dir, &["build", "curl.scp", "-o", "audit", "--audit"]);
        push(node, &dir.join("audit/curl.aarch64.bpf"), "/opt/audit.bpf");
        let (_, log) = node.run(&format!(
            "echo log > /proc/sys/kernel/seccomp/actions_logged; dmesg -c >/dev/null; {env} /opt/under /opt/audit.bpf {fetch} >/dev/null; dmesg | grep -o 'syscall=[0-9]*' | sort -u"
        ));
        let lacking: Vec<String> = log
            .lines()
            .filter_map(|l| l.strip_prefix("syscall=")?.parse::<u32>().ok())
            .map(|nr| scpc::abi::Arch::Aarch64.table().by_nr(nr).map_or(nr.to_string(), |s| s.name.to_string()))
            .collect();
        panic!("curl under its draft on aarch64: {out:?}; the draft lacks {lacking:?}\n{draft}");
    }
    let (_, out) = node.run(&format!("{env} /opt/under /opt/control.bpf {fetch}; echo exit=$?"));
    assert!(out.contains("exit=159\n") && !out.contains("hello"), "without ppoll, curl is killed (128 + SIGSYS): {out:?}");
    drop(fleet);
    let _ = std::fs::remove_dir_all(&dir);
}
