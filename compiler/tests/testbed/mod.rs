//! A fleet of real OpenSSH servers for the deployer's tests (facts in
//! `shared/design/testbed-notes.md`).
//!
//! Each node is Debian's `/usr/sbin/sshd` in its own PID and mount namespace: its own host
//! key, authorized key and deploy directory, seen by the node at `/srv/edge`; optionally a fake
//! `uname` so it reports another architecture; optionally its own network namespace behind a
//! veth pair (10.231.N.2), whose link the test can slow down (tbf), make lossy (nftables
//! `numgen`) or cut. Killing the namespace's first process kills every session of the node.

#![allow(dead_code)]

use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Where the nodes see their deploy directory.
pub const EDGE: &str = "/srv/edge";

static NEXT_NET: AtomicUsize = AtomicUsize::new(0);

pub fn sh(cmd: &str) -> String {
    let out = Command::new("sh").arg("-c").arg(cmd).output().expect("sh runs");
    assert!(out.status.success(), "`{cmd}` failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Whether the machine can run the test bed (root, sshd, namespaces).
pub fn available() -> bool {
    let root = Command::new("id").arg("-u").output().map(|o| o.stdout == b"0\n").unwrap_or(false);
    root && Path::new("/usr/sbin/sshd").exists() && Path::new("/usr/bin/ssh-keygen").exists()
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

/// The deployer's identity: one client key for the whole fleet.
pub struct Fleet {
    pub root: PathBuf,
    pub key: PathBuf,
    pub nodes: Vec<Node>,
}

pub struct Node {
    pub name: String,
    /// The node's deploy directory, as this machine sees it.
    pub dir: PathBuf,
    /// Its private files (config, host key).
    pub home: PathBuf,
    pub address: String,
    pub port: u16,
    /// The public host key line (`ssh-ed25519 AAAA...`).
    pub host_key: String,
    /// The network namespace, if the node has one.
    pub netns: Option<String>,
    /// The host-side veth.
    pub veth: Option<String>,
    child: Option<Child>,
}

/// How a node is made.
#[derive(Clone, Default)]
pub struct Spec {
    /// `uname -m` it reports (its real one when `None`).
    pub machine: Option<String>,
    /// `uname -r` it reports.
    pub kernel: Option<String>,
    /// Give it its own network namespace (needed to shape or cut its link).
    pub netns: bool,
}

impl Fleet {
    pub fn new(tag: &str) -> Fleet {
        let root = std::env::temp_dir().join(format!("scpc-testbed-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).expect("testbed root");
        std::fs::create_dir_all("/run/sshd").expect("/run/sshd");
        std::fs::create_dir_all(EDGE).expect("/srv/edge");
        let key = root.join("id_ed25519");
        sh(&format!("ssh-keygen -q -t ed25519 -N '' -C scpc-test -f {}", key.display()));
        Fleet { root, key, nodes: Vec::new() }
    }

    /// Starts a node and waits until it answers with an SSH banner.
    pub fn add(&mut self, name: &str, spec: Spec) -> usize {
        let home = self.root.join(format!("node-{name}"));
        let dir = home.join("edge");
        std::fs::create_dir_all(&dir).expect("node dir");
        sh(&format!("ssh-keygen -q -t ed25519 -N '' -C {name} -f {}/host_key", home.display()));
        let host_key = std::fs::read_to_string(home.join("host_key.pub")).expect("host key");
        let host_key = host_key.split_whitespace().take(2).collect::<Vec<_>>().join(" ");
        let (address, port, netns, veth) = if spec.netns {
            let n = 10 + NEXT_NET.fetch_add(1, Ordering::SeqCst) + (std::process::id() as usize % 40) * 5;
            let ns = format!("scpc{n}");
            let veth = format!("scpc{n}h");
            if Path::new("/run/netns").join(&ns).exists() {
                let _ = Command::new("ip").args(["netns", "del", &ns]).status();
            }
            sh(&format!(
                "ip netns add {ns} && ip link add {veth} type veth peer name eth0 netns {ns} && \
                 ip addr add 10.231.{n}.1/30 dev {veth} && ip link set {veth} up && \
                 ip -n {ns} addr add 10.231.{n}.2/30 dev eth0 && ip -n {ns} link set eth0 up && ip -n {ns} link set lo up"
            ));
            (format!("10.231.{n}.2"), 22u16, Some(ns), Some(veth))
        } else {
            ("127.0.0.1".to_string(), free_port(), None, None)
        };
        let listen = if netns.is_some() { "0.0.0.0".to_string() } else { address.clone() };
        let config = format!(
            "Port {port}\nListenAddress {listen}\nHostKey {home}/host_key\nAuthorizedKeysFile {root}/authorized_keys\nStrictModes no\n\
             PermitRootLogin prohibit-password\nPasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n\
             MaxStartups 100\nSubsystem sftp internal-sftp\nPidFile none\nLogLevel ERROR\nClientAliveInterval 0\n",
            home = home.display(),
            root = self.root.display(),
        );
        std::fs::write(home.join("sshd_config"), config).expect("config");
        std::fs::copy(format!("{}.pub", self.key.display()), self.root.join("authorized_keys")).expect("authorized_keys");
        // an edge node's root has a plain shell: hide this machine's ~/.bashrc (bash reads it for
        // ssh commands; a development box's may run slow tools, and a session killed inside one
        // can leave a lock behind that hangs every later login)
        std::fs::write(home.join("bashrc"), "").expect("bashrc");
        let mut mounts = format!(
            "mount --bind {} {EDGE} && {{ [ ! -e /root/.bashrc ] || mount --bind {}/bashrc /root/.bashrc; }}",
            dir.display(),
            home.display()
        );
        if spec.machine.is_some() || spec.kernel.is_some() {
            let real = sh("uname -m").trim().to_string();
            let kernel = sh("uname -r").trim().to_string();
            let fake = home.join("uname");
            std::fs::write(
                &fake,
                format!(
                    "#!/bin/sh\nfor a in \"$@\"; do case \"$a\" in -m) echo {};; -r) echo {};; *) echo Linux;; esac; done\n",
                    spec.machine.as_deref().unwrap_or(&real),
                    spec.kernel.as_deref().unwrap_or(&kernel)
                ),
            )
            .expect("fake uname");
            sh(&format!("chmod 755 {}", fake.display()));
            mounts.push_str(&format!(" && mount --bind {} /usr/bin/uname", fake.display()));
        }
        let inner = format!("{mounts} && exec /usr/sbin/sshd -D -e -f {}/sshd_config", home.display());
        let mut cmd = match &netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, "unshare"]);
                c
            }
            None => Command::new("unshare"),
        };
        cmd.args(["--pid", "--fork", "--kill-child", "--mount", "--propagation", "private", "sh", "-c", &inner]);
        let log = std::fs::File::create(home.join("sshd.log")).expect("log");
        let child = cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(log).spawn().expect("unshare sshd");
        let node = Node { name: name.into(), dir, home, address, port, host_key, netns, veth, child: Some(child) };
        node.wait_ready();
        self.nodes.push(node);
        self.nodes.len() - 1
    }

    /// A known_hosts file recording every node's key (`[addr]:port` entries).
    pub fn known_hosts(&self) -> PathBuf {
        let path = self.root.join("known_hosts");
        let text: String =
            self.nodes.iter().map(|n| format!("{} {}\n", scpc_deploy::known_hosts::host_name(&n.address, n.port), n.host_key)).collect();
        std::fs::write(&path, text).expect("known_hosts");
        path
    }

    /// An inventory of every node, with `services` (TOML) and `rollout` settings appended.
    pub fn inventory(&self, artifacts: &Path, rollout: &str, services: &str) -> PathBuf {
        let mut t = format!(
            "artifacts = \"{}\"\n\n[defaults]\nuser = \"root\"\nidentity = \"{}\"\nknown_hosts = \"{}\"\n\n[rollout]\n{rollout}\n",
            artifacts.display(),
            self.key.display(),
            self.root.join("known_hosts").display()
        );
        for n in &self.nodes {
            t.push_str(&format!("\n[[host]]\nname = \"{}\"\naddress = \"{}\"\nport = {}\n", n.name, n.address, n.port));
        }
        t.push('\n');
        t.push_str(services);
        let path = self.root.join("inventory.toml");
        std::fs::write(&path, t).expect("inventory");
        path
    }
}

impl Node {
    fn wait_ready(&self) {
        let addr: SocketAddr = format!("{}:{}", self.address, self.port).parse().expect("addr");
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
                let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
                let mut buf = [0u8; 4];
                if s.read_exact(&mut buf).is_ok() && &buf == b"SSH-" {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("node {} did not start: {}", self.name, std::fs::read_to_string(self.home.join("sshd.log")).unwrap_or_default());
    }

    /// Power loss: every process of the node dies at once.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Runs a command in the node's network namespace.
    pub fn in_netns(&self, cmd: &str) -> String {
        let ns = self.netns.as_ref().expect("a node with a network namespace");
        sh(&format!("ip netns exec {ns} sh -c '{cmd}'"))
    }

    /// Shapes the link towards the node (this machine's side of the veth).
    pub fn shape(&self, tc_args: &str) {
        let veth = self.veth.as_ref().expect("a node with a network namespace");
        sh(&format!("tc qdisc replace dev {veth} root {tc_args}"));
    }

    /// Pulls (or plugs back) the node's cable: its own end of the veth, so that this machine
    /// keeps its route and packets vanish (taking this side down would fail sends at once).
    pub fn link(&self, up: bool) {
        let ns = self.netns.as_ref().expect("a node with a network namespace");
        sh(&format!("ip -n {ns} link set eth0 {}", if up { "up" } else { "down" }));
    }

    pub fn file(&self, name: &str) -> Option<Vec<u8>> {
        std::fs::read(self.dir.join(name)).ok()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
        if let Some(v) = &self.veth {
            let _ = Command::new("ip").args(["link", "del", v]).status();
        }
        if let Some(ns) = &self.netns {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        self.nodes.clear();
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// Runs the scpc binary; returns (status, stdout, stderr).
pub fn scpc(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_scpc")).args(args).output().expect("scpc runs");
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

pub fn sha256(bytes: &[u8]) -> String {
    scpc_deploy::artifacts::sha256_hex(bytes)
}

/// A TCP relay that holds every chunk `one_way` before passing it on, in both directions (so a
/// round trip gains twice that). This kernel has no netem; the NFQUEUE delayer of the notes
/// needs a helper program, so the test bed delays at the stream level instead. Packet loss is
/// real (nftables in the node's namespace). Returns the relay's port; it lives as long as the
/// test process.
pub fn delay_relay(to: SocketAddr, one_way: Duration) -> u16 {
    use std::io::Write;
    use std::sync::mpsc;
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    fn pipe(mut from: TcpStream, mut to: TcpStream, delay: Duration) {
        let (tx, rx) = mpsc::channel::<(Instant, Vec<u8>)>();
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 16 * 1024];
            while let Ok(n) = from.read(&mut buf) {
                if n == 0 || tx.send((Instant::now() + delay, buf[..n].to_vec())).is_err() {
                    break;
                }
            }
        });
        std::thread::spawn(move || {
            for (at, chunk) in rx {
                std::thread::sleep(at.saturating_duration_since(Instant::now()));
                if to.write_all(&chunk).is_err() {
                    break;
                }
            }
            let _ = to.shutdown(std::net::Shutdown::Write);
        });
    }
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let Ok(server) = TcpStream::connect(to) else { continue };
            let _ = client.set_nodelay(true);
            let _ = server.set_nodelay(true);
            let (c2, s2) = (client.try_clone().expect("clone"), server.try_clone().expect("clone"));
            pipe(client, server, one_way);
            pipe(s2, c2, one_way);
        }
    });
    port
}
