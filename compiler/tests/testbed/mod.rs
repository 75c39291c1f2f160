//! A fleet of real OpenSSH servers for the deployer's tests (facts in
//! `compiler/tests/testbed/NOTES.md`).
//!
//! Each node is Debian's `/usr/sbin/sshd` in its own PID and mount namespace: its own host
//! key, authorized key and deploy directory, seen by the node at `/srv/edge`; optionally a fake
//! `uname` so it reports another architecture; optionally its own network namespace behind a
//! veth pair (10.231.N.2), whose link the test can slow down (tbf), make lossy (nftables
//! `numgen`) or cut. Killing the namespace's first process kills every session of the node.
//! A node can run dropbear instead (the usual SSH server on ARM boxes, with its small 24 KiB
//! channel window). And one kind of node is a real machine of another architecture (aarch64,
//! 32-bit arm, riscv64): qemu-system-* booting Debian's kernel for it with a busybox + dropbear
//! initramfs built from Debian's packages of that architecture by one builder (`vm/build.sh`),
//! reached over SSH like any other host; `judge` runs filters on its kernel.

#![allow(dead_code)]

pub mod judge;

use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Where the nodes see their deploy directory.
pub const EDGE: &str = "/srv/edge";

/// Where the nodes keep the node program (each node its own, bound over this path).
pub const NODE_DIR: &str = "/var/lib/scpc";

/// The node programs of every architecture (`deploy/node/build.sh`), built once per test
/// run into `target/node-programs` (a lock keeps two test programs from building at once;
/// cargo makes a build that is up to date cost a second).
pub fn node_programs() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
            let out = root.join("target/node-programs");
            std::fs::create_dir_all(root.join("target")).expect("target");
            let lock = std::fs::File::create(root.join("target/node-programs.lock")).expect("lock file");
            lock.lock().expect("lock the node programs");
            let built = Command::new("sh").arg(root.join("deploy/node/build.sh")).arg(&out).output().expect("sh runs");
            assert!(
                built.status.success(),
                "building the node programs failed (.ci/run installs the rust targets and linkers):\n{}{}",
                String::from_utf8_lossy(&built.stdout),
                String::from_utf8_lossy(&built.stderr)
            );
            out
        })
        .clone()
}

/// A network namespace `scpcN` of its own (N claimed by [`claim_net`]) behind a veth pair:
/// `scpcNh` on this side (10.231.N.1/30), `peer` inside (10.231.N.2/30). (N, its lock, the
/// namespace, the host's end.)
///
/// `behind`: the namespace of a bastion; the host-side veth goes there instead of this machine's,
/// so only the bastion reaches the new namespace.
fn new_netns(peer: &str, behind: Option<&str>) -> (usize, std::fs::File, String, String) {
    let (n, lock) = claim_net();
    let ns = format!("scpc{n}");
    let veth = format!("scpc{n}h");
    // left by a run that was killed: its lock is free, so nobody uses it
    if Path::new("/run/netns").join(&ns).exists() {
        let _ = Command::new("ip").args(["netns", "del", &ns]).status();
        let _ = Command::new("ip").args(["link", "del", &veth]).status();
    }
    let (outer, moved) = match behind {
        Some(b) => (format!("-n {b} "), format!("ip link set {veth} netns {b} && ")),
        None => (String::new(), String::new()),
    };
    sh(&format!(
        "ip netns add {ns} && ip link add {veth} type veth peer name {peer} netns {ns} && {moved}\
         ip {outer}addr add 10.231.{n}.1/30 dev {veth} && ip {outer}link set {veth} up && \
         ip -n {ns} addr add 10.231.{n}.2/30 dev {peer} && ip -n {ns} link set {peer} up && ip -n {ns} link set lo up"
    ));
    (n, lock, ns, veth)
}

/// Claims a network number 10..=250 for this process: a lock file per number under
/// `/run/scpc-testbed`, held while the node lives, so that test runs side by side (two
/// checkouts, a stress run beside CI) never share a namespace, and a namespace left by a
/// killed run is reclaimed by the next one that gets its lock.
fn claim_net() -> (usize, std::fs::File) {
    std::fs::create_dir_all("/run/scpc-testbed").expect("/run/scpc-testbed");
    for n in 10..=250 {
        let path = format!("/run/scpc-testbed/net-{n}.lock");
        let file = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&path).expect("lock file");
        if file.try_lock().is_ok() {
            return (n, file);
        }
    }
    panic!("the test bed has no free network number left (241 namespaces in use under /run/scpc-testbed)");
}

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
    /// Whether it is a virtual machine, whose files this machine cannot see (`file` asks it).
    pub vm: bool,
    /// The fleet's client key, for `run`.
    key: PathBuf,
    pub address: String,
    pub port: u16,
    /// The public host key line (`ssh-ed25519 AAAA...`).
    pub host_key: String,
    /// The network namespace, if the node has one.
    pub netns: Option<String>,
    /// The host-side veth (in the bastion's namespace for a node behind one).
    pub veth: Option<String>,
    /// The network namespace of the bastion it sits behind ([`Spec::behind`]).
    pub behind: Option<String>,
    /// The claim on the network number (released when the node is dropped).
    net_lock: Option<std::fs::File>,
    child: Option<Child>,
    /// For a VM node: the time from starting qemu to its first SSH banner.
    pub boot: Option<Duration>,
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
    /// What serves SSH.
    pub server: Server,
    /// No SFTP server on the node (OpenWrt's dropbear, busybox images).
    pub no_sftp: bool,
    /// The deploy directory is a tmpfs of this size (`8k`, `64k`): a nearly full disk.
    pub edge_tmpfs: Option<String>,
    /// With `netns`: the network namespace of the node it sits behind (a bastion). Its veth
    /// pair joins that namespace instead of this machine's, so this machine has no route to it
    /// and it none to this machine: it is reached only through the bastion's SSH server.
    pub behind: Option<String>,
}

/// The SSH server of a node.
#[derive(Clone, Copy, Default, PartialEq, Eq, Debug)]
pub enum Server {
    /// Debian's OpenSSH `sshd` (2 MiB channel window).
    #[default]
    OpenSsh,
    /// Debian's dropbear with its default 24 KiB channel window.
    Dropbear,
}

impl Fleet {
    pub fn new(tag: &str) -> Fleet {
        let root = std::env::temp_dir().join(format!("scpc-testbed-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).expect("testbed root");
        std::fs::create_dir_all("/run/sshd").expect("/run/sshd");
        std::fs::create_dir_all(EDGE).expect("/srv/edge");
        std::fs::create_dir_all(NODE_DIR).expect("/var/lib/scpc");
        let key = root.join("id_ed25519");
        sh(&format!("ssh-keygen -q -t ed25519 -N '' -C scpc-test -f {}", key.display()));
        Fleet { root, key, nodes: Vec::new() }
    }

    /// Starts a node and waits until it answers with an SSH banner.
    pub fn add(&mut self, name: &str, spec: Spec) -> usize {
        let home = self.root.join(format!("node-{name}"));
        let dir = home.join("edge");
        std::fs::create_dir_all(&dir).expect("node dir");
        if let Some(size) = &spec.edge_tmpfs {
            sh(&format!("mount -t tmpfs -o size={size},mode=755 scpc-edge {}", dir.display()));
        }
        let host_key = new_host_key(&home, name);
        let mut net_lock = None;
        let (address, port, netns, veth) = if spec.netns {
            let (n, lock, ns, veth) = new_netns("eth0", spec.behind.as_deref());
            net_lock = Some(lock);
            (format!("10.231.{n}.2"), 22u16, Some(ns), Some(veth))
        } else {
            ("127.0.0.1".to_string(), free_port(), None, None)
        };
        // an edge node's root has a plain shell: hide this machine's ~/.bashrc (bash reads it for
        // ssh commands; a development box's may run slow tools, and a session killed inside one
        // can leave a lock behind that hangs every later login)
        std::fs::write(home.join("bashrc"), "").expect("bashrc");
        std::fs::create_dir_all(home.join("scpc")).expect("node program dir");
        let mut mounts = format!(
            "mount --bind {} {EDGE} && mount --bind {h}/scpc {NODE_DIR} && {{ [ ! -e /root/.bashrc ] || mount --bind {h}/bashrc /root/.bashrc; }}",
            dir.display(),
            h = home.display()
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
        let listen = if netns.is_some() { "0.0.0.0".to_string() } else { address.clone() };
        let server = match spec.server {
            Server::OpenSsh => {
                let config = format!(
                    "Port {port}\nListenAddress {listen}\nHostKey {home}/host_key\nAuthorizedKeysFile {root}/authorized_keys\nStrictModes no\n\
                     PermitRootLogin prohibit-password\nPasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n\
                     MaxStartups 100\n{sftp}PidFile none\nLogLevel ERROR\nClientAliveInterval 0\n",
                    home = home.display(),
                    root = self.root.display(),
                    sftp = if spec.no_sftp { "" } else { "Subsystem sftp internal-sftp\n" },
                );
                std::fs::write(home.join("sshd_config"), config).expect("config");
                std::fs::copy(format!("{}.pub", self.key.display()), self.root.join("authorized_keys")).expect("authorized_keys");
                format!("/usr/sbin/sshd -D -e -f {}/sshd_config", home.display())
            }
            Server::Dropbear => {
                // dropbear reads ~/.ssh/authorized_keys and has no option for another path: the
                // node gets its own /root
                let root_home = home.join("root");
                std::fs::create_dir_all(root_home.join(".ssh")).expect("root home");
                std::fs::copy(format!("{}.pub", self.key.display()), root_home.join(".ssh/authorized_keys")).expect("authorized_keys");
                std::fs::write(root_home.join(".bashrc"), "").expect("bashrc");
                sh(&format!("chmod 700 {h} {h}/.ssh && chmod 600 {h}/.ssh/authorized_keys", h = root_home.display()));
                sh(&format!("dropbearconvert openssh dropbear {h}/host_key {h}/host_key.dropbear 2>/dev/null", h = home.display()));
                mounts.push_str(&format!(" && mount --bind {} /root", root_home.display()));
                if spec.no_sftp {
                    // dropbear runs /usr/lib/sftp-server; here it cannot be executed
                    mounts.push_str(" && mount --bind /dev/null /usr/lib/openssh/sftp-server");
                }
                format!("/usr/sbin/dropbear -F -E -s -p {listen}:{port} -r {h}/host_key.dropbear -P {h}/dropbear.pid", h = home.display())
            }
        };
        let inner = format!("{mounts} && exec {server}");
        let mut cmd = match &netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, "unshare"]);
                c
            }
            None => Command::new("unshare"),
        };
        // its own /proc: process ids the node's programs write (pid files) are the ones it reads
        cmd.args(["--pid", "--fork", "--kill-child", "--mount-proc", "--propagation", "private", "sh", "-c", &inner]);
        let log = std::fs::File::create(home.join("sshd.log")).expect("log");
        let child = cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(log).spawn().expect("unshare sshd");
        let node = Node {
            name: name.into(),
            dir,
            home,
            vm: false,
            key: self.key.clone(),
            address,
            port,
            host_key,
            netns,
            veth,
            behind: spec.behind.clone(),
            net_lock,
            child: Some(child),
            boot: None,
        };
        node.wait_ready(Duration::from_secs(60));
        self.nodes.push(node);
        self.nodes.len() - 1
    }

    /// Boots a node that runs a real systemd: the Debian root of `systemd/build.sh` (built once,
    /// then cached) booted with `systemd-nspawn -b` in its own network namespace (10.231.N.2,
    /// port 22, OpenSSH's sshd as a systemd service), with a volatile overlay over the cached
    /// root, its deploy directory and node program directory bound in, and nspawn's own
    /// seccomp filter off (`SYSTEMD_SECCOMP=0`: a node program under a filter may not read
    /// other processes' filters). It runs `edge-probe.service`, a real unit.
    pub fn add_systemd(&mut self, name: &str) -> usize {
        let root = systemd_root();
        let home = self.root.join(format!("node-{name}"));
        let dir = home.join("edge");
        let keys = home.join("ssh");
        std::fs::create_dir_all(&dir).expect("node dir");
        std::fs::create_dir_all(home.join("scpc")).expect("node program dir");
        std::fs::create_dir_all(&keys).expect("ssh dir");
        let host_key = new_host_key(&home, name);
        std::fs::copy(home.join("host_key"), keys.join("host_key")).expect("host key");
        std::fs::copy(format!("{}.pub", self.key.display()), keys.join("authorized_keys")).expect("authorized_keys");
        sh(&format!("chmod 700 {k} && chmod 600 {k}/host_key {k}/authorized_keys", k = keys.display()));
        let (n, lock, ns, veth) = new_netns("host0", None);
        let log = std::fs::File::create(home.join("sshd.log")).expect("console log");
        let child = Command::new("systemd-nspawn")
            .env("SYSTEMD_SECCOMP", "0")
            .args(["--quiet", "--register=no", "--keep-unit", "--volatile=overlay", "-b"])
            .arg(format!("--directory={}", root.display()))
            .arg(format!("--network-namespace-path=/run/netns/{ns}"))
            .arg(format!("--bind={}:{EDGE}", dir.display()))
            .arg(format!("--bind={}:{NODE_DIR}", home.join("scpc").display()))
            .arg(format!("--bind-ro={}:/etc/ssh/scpc", keys.display()))
            .arg(format!("--machine=scpc-{name}-{n}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("systemd-nspawn (.ci/run installs systemd-container)");
        let node = Node {
            name: name.into(),
            dir,
            home,
            vm: false,
            key: self.key.clone(),
            address: format!("10.231.{n}.2"),
            port: 22,
            host_key,
            netns: Some(ns),
            veth: Some(veth),
            behind: None,
            net_lock: Some(lock),
            child: Some(child),
            boot: None,
        };
        let started = Instant::now();
        node.wait_ready(Duration::from_secs(180));
        let mut node = node;
        node.boot = Some(started.elapsed());
        self.nodes.push(node);
        self.nodes.len() - 1
    }

    /// Boots a real aarch64 node ([`Fleet::add_vm`] with [`VmArch::Aarch64`]).
    pub fn add_arm64(&mut self, name: &str) -> usize {
        self.add_vm(name, VmArch::Aarch64)
    }

    /// Boots a real node of `arch`: qemu-system-* (TCG) running Debian's kernel for it and the
    /// initramfs of `vm/build.sh` (built once per architecture, then cached under the target
    /// directory), plus this node's host key and the fleet's authorized key. It serves SSH with
    /// dropbear on a loopback port forwarded by qemu (`restrict=on`: the guest reaches nothing
    /// else), and has `seccheck` (`vm/seccheck.c`) and the judge (`vm/judge.c`; on aarch64
    /// also `judge-arm`, a 32-bit ARM build for the arm half of its filters) to show what a
    /// filter does on its kernel. The boot time is in [`Node::boot`].
    pub fn add_vm(&mut self, name: &str, arch: VmArch) -> usize {
        self.add_vms(&[(name, arch)])[0]
    }

    /// Boots several VM nodes at once (as [`Fleet::add_vm`]); returns their indices.
    pub fn add_vms(&mut self, specs: &[(&str, VmArch)]) -> Vec<usize> {
        // the images first, one after the other (each builder runs apt and a compiler)
        let images: Vec<PathBuf> = specs.iter().map(|(_, arch)| vm_image(*arch)).collect();
        let mut started = Vec::new();
        for ((name, arch), image) in specs.iter().zip(images) {
            started.push((self.start_vm(name, *arch, &image), Instant::now()));
        }
        let mut out = Vec::new();
        for (mut node, at) in started {
            // 5 to 20 s each on an idle machine; TCG shares the two cores with everything else
            node.wait_ready(Duration::from_secs(300));
            node.boot = Some(at.elapsed());
            self.nodes.push(node);
            out.push(self.nodes.len() - 1);
        }
        out
    }

    fn start_vm(&self, name: &str, arch: VmArch, image: &Path) -> Node {
        let home = self.root.join(format!("node-{name}"));
        let overlay = home.join("overlay");
        std::fs::create_dir_all(overlay.join("etc/dropbear")).expect("overlay");
        std::fs::create_dir_all(overlay.join("root/.ssh")).expect("overlay");
        let host_key = new_host_key(&home, name);
        sh(&format!(
            "dropbearconvert openssh dropbear {}/host_key {}/etc/dropbear/host_key 2>/dev/null",
            home.display(),
            overlay.display()
        ));
        std::fs::copy(format!("{}.pub", self.key.display()), overlay.join("root/.ssh/authorized_keys")).expect("authorized_keys");
        sh(&format!(
            "cd {o} && chmod 700 root root/.ssh && chmod 600 root/.ssh/authorized_keys etc/dropbear/host_key && \
             {{ find . | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet | gzip; }} > ../overlay.cpio.gz && \
             cat {base} ../overlay.cpio.gz > ../initrd.gz",
            o = overlay.display(),
            base = image.join("base.cpio.gz").display()
        ));
        let port = free_port();
        let log = std::fs::File::create(home.join("sshd.log")).expect("console log");
        let (program, machine, console) = arch.qemu();
        let child = Command::new(program)
            .args(machine)
            .args(["-m", "512", "-nographic", "-no-reboot"])
            .arg("-kernel")
            .arg(image.join("kernel"))
            .arg("-initrd")
            .arg(home.join("initrd.gz"))
            .args(["-append", &format!("console={console} quiet panic=-1")])
            .args(["-netdev", &format!("user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:{port}-:22")])
            .args(["-device", "virtio-net-pci,netdev=n0,romfile=", "-device", "virtio-rng-pci"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("{program} cannot run ({e}): .ci/run installs it ({})", arch.qemu_package()));
        Node {
            name: name.into(),
            dir: home.join("edge-in-vm"),
            home,
            vm: true,
            key: self.key.clone(),
            address: "127.0.0.1".into(),
            port,
            host_key,
            netns: None,
            veth: None,
            behind: None,
            net_lock: None,
            child: Some(child),
            boot: None,
        }
    }

    /// An ssh_config for OpenSSH's client (Ansible's, and its `ProxyJump` hops, which take no
    /// `-o` or `-i` of the command line): root, the fleet's key, `known_hosts` checked strictly.
    pub fn ssh_config(&self, known_hosts: &Path) -> PathBuf {
        let path = self.root.join("ssh_config");
        std::fs::write(
            &path,
            format!(
                "Host *\n  User root\n  IdentityFile {}\n  UserKnownHostsFile {}\n  StrictHostKeyChecking yes\n  BatchMode yes\n",
                self.key.display(),
                known_hosts.display()
            ),
        )
        .expect("ssh_config");
        path
    }

    /// A known_hosts file recording every node's key (`[addr]:port` entries).
    pub fn known_hosts(&self) -> PathBuf {
        let path = self.root.join("known_hosts");
        let text: String =
            self.nodes.iter().map(|n| format!("{} {}\n", scpc_deploy::known_hosts::host_name(&n.address, n.port), n.host_key)).collect();
        std::fs::write(&path, text).expect("known_hosts");
        path
    }

    /// An inventory of every node, with `services` (TOML) and `rollout` settings appended;
    /// install paths under `/srv/edge`, the node programs of [`node_programs`].
    pub fn inventory(&self, artifacts: &Path, rollout: &str, services: &str) -> PathBuf {
        // an emulated guest on a loaded machine can take longer than the default 10 s to log in
        let rollout = if self.nodes.iter().any(|n| n.vm) && !rollout.contains("connect_timeout") {
            format!("{rollout}\nconnect_timeout = 60")
        } else {
            rollout.to_string()
        };
        let mut t = format!(
            "artifacts = \"{}\"\ninstall_root = \"{EDGE}\"\nnode_programs = \"{}\"\n\n[defaults]\nuser = \"root\"\nidentity = \"{}\"\nknown_hosts = \"{}\"\n\n[rollout]\n{rollout}\n",
            artifacts.display(),
            node_programs().display(),
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
    fn wait_ready(&self, within: Duration) {
        let addr: SocketAddr = format!("{}:{}", self.address, self.port).parse().expect("addr");
        let deadline = Instant::now() + within;
        if let Some(b) = &self.behind {
            // only the bastion's namespace reaches it
            while Instant::now() < deadline {
                let scan = Command::new("ip")
                    .args(["netns", "exec", b, "ssh-keyscan", "-T", "1", "-p", &self.port.to_string(), &self.address])
                    .stderr(Stdio::null())
                    .output()
                    .expect("ssh-keyscan runs");
                if scan.status.success() && !scan.stdout.is_empty() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        while Instant::now() < deadline {
            if let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
                // a loaded machine (a TCG guest sharing 2 cores with builds) can take seconds
                // to send the banner: a short wait here would close every try before it
                let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
                let mut buf = [0u8; 4];
                if s.read_exact(&mut buf).is_ok() && &buf == b"SSH-" {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "node {} did not start within {within:?}: {}",
            self.name,
            std::fs::read_to_string(self.home.join("sshd.log")).unwrap_or_default()
        );
    }

    /// Power loss: every process of the node dies at once.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            // the first process of the node's own PID namespace (sshd, or a container's
            // systemd): when it dies, every process of the namespace dies with it
            for first in children(c.id()) {
                let _ = Command::new("kill").args(["-9", &first.to_string()]).status();
            }
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

    /// A file of the node's deploy directory (asked over SSH from a virtual machine).
    pub fn file(&self, name: &str) -> Option<Vec<u8>> {
        if !self.vm {
            return std::fs::read(self.dir.join(name)).ok();
        }
        let out = self.ssh(&format!("cat {EDGE}/{name}"));
        out.status.success().then_some(out.stdout)
    }

    /// Runs a command on the node with OpenSSH's client (not the deployer's), checking the
    /// node's host key; returns (status, stdout + stderr).
    pub fn run(&self, cmd: &str) -> (i32, String) {
        let out = self.ssh(cmd);
        let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&out.stderr));
        (out.status.code().unwrap_or(-1), text)
    }

    fn ssh(&self, cmd: &str) -> std::process::Output {
        self.ssh_command(cmd).stdin(Stdio::null()).output().expect("ssh runs")
    }

    /// OpenSSH's client, set up to run `cmd` on the node as root (its host key checked).
    pub fn ssh_command(&self, cmd: &str) -> Command {
        let known = self.home.join("known_host");
        std::fs::write(&known, format!("{} {}\n", scpc_deploy::known_hosts::host_name(&self.address, self.port), self.host_key))
            .expect("known_host");
        let mut c = Command::new("ssh");
        c.args(["-F", "/dev/null", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes", "-o", "ConnectTimeout=20"])
            .arg("-o")
            .arg(format!("UserKnownHostsFile={}", known.display()))
            .arg("-i")
            .arg(&self.key)
            .args(["-p", &self.port.to_string(), &format!("root@{}", self.address), cmd]);
        c
    }
}

/// The processes whose parent is `pid`.
pub fn children(pid: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|p| {
            let stat = std::fs::read_to_string(format!("/proc/{p}/stat")).unwrap_or_default();
            // the parent is the second field after the parenthesized name
            stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<u32>().ok()) == Some(pid)
        })
        .collect()
}

impl Node {
    /// The most bytes any `scpc-node` process of the node has read so far (`rchar` of
    /// `/proc/PID/io`): a request being received shows as a number that grows.
    pub fn node_program_read(&self) -> u64 {
        let Some(unshare) = self.child.as_ref().map(Child::id) else { return 0 };
        let mut stack = vec![unshare];
        let mut most = 0;
        while let Some(p) = stack.pop() {
            let kids = children(p);
            stack.extend(&kids);
            let comm = std::fs::read_to_string(format!("/proc/{p}/comm")).unwrap_or_default();
            if comm.trim() == "scpc-node" {
                let io = std::fs::read_to_string(format!("/proc/{p}/io")).unwrap_or_default();
                let rchar = io.lines().find_map(|l| l.strip_prefix("rchar:")).and_then(|v| v.trim().parse().ok()).unwrap_or(0);
                most = most.max(rchar);
            }
        }
        most
    }

    /// Cuts every SSH session of the node (kills each per-connection server process, by its
    /// id) and leaves the node running: what a client sees when its link dies mid-command.
    /// Returns how many sessions were cut.
    pub fn kill_sessions(&self) -> usize {
        let Some(unshare) = self.child.as_ref().map(Child::id) else { return 0 };
        let mut cut = 0;
        for listener in children(unshare) {
            for session in children(listener) {
                let _ = Command::new("kill").args(["-9", &session.to_string()]).status();
                cut += 1;
            }
        }
        cut
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
        let _ = Command::new("umount").arg("-l").arg(&self.dir).stderr(Stdio::null()).status();
        if let Some(v) = &self.veth {
            // behind a bastion, the veth is in the bastion's namespace
            let mut ip = Command::new("ip");
            if let Some(b) = &self.behind {
                ip.args(["-n", b]);
            }
            let _ = ip.args(["link", "del", v]).stderr(Stdio::null()).status();
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

/// Makes `HOME/host_key` (ed25519, OpenSSH format); returns its public line (`ssh-ed25519 AAAA...`).
fn new_host_key(home: &Path, name: &str) -> String {
    sh(&format!("ssh-keygen -q -t ed25519 -N '' -C {name} -f {}/host_key", home.display()));
    let public = std::fs::read_to_string(home.join("host_key.pub")).expect("host key");
    public.split_whitespace().take(2).collect::<Vec<_>>().join(" ")
}

/// The architecture of a VM node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VmArch {
    /// qemu-system-aarch64 -M virt, Debian's arm64 kernel (this machine's suite).
    Aarch64,
    /// qemu-system-arm -M virt, Debian's armmp (armhf) kernel (this machine's suite).
    Arm,
    /// qemu-system-riscv64 -M virt (OpenSBI), Debian 13's riscv64 kernel.
    Riscv64,
}

impl VmArch {
    /// Every VM architecture.
    pub const ALL: [VmArch; 3] = [VmArch::Arm, VmArch::Aarch64, VmArch::Riscv64];

    /// The name `vm/build.sh` takes (scpc's name of the architecture).
    pub fn name(self) -> &'static str {
        match self {
            VmArch::Aarch64 => "aarch64",
            VmArch::Arm => "arm",
            VmArch::Riscv64 => "riscv64",
        }
    }

    /// The qemu program, its machine options and the console device.
    fn qemu(self) -> (&'static str, &'static [&'static str], &'static str) {
        // one vCPU: under TCG a second one costs more in cross-CPU interrupts than it gives
        // (thread creation, which the judge does for every killed call, was 3 to 10 times
        // slower with two)
        match self {
            VmArch::Aarch64 => ("qemu-system-aarch64", &["-M", "virt", "-cpu", "cortex-a72", "-smp", "1"], "ttyAMA0"),
            // armmp has no LPAE: keep the PCI windows below 4 GiB
            VmArch::Arm => ("qemu-system-arm", &["-M", "virt,highmem=off", "-cpu", "cortex-a15", "-smp", "1"], "ttyAMA0"),
            VmArch::Riscv64 => ("qemu-system-riscv64", &["-M", "virt", "-smp", "1"], "ttyS0"),
        }
    }

    fn qemu_package(self) -> &'static str {
        match self {
            VmArch::Aarch64 | VmArch::Arm => "qemu-system-arm",
            VmArch::Riscv64 => "qemu-system-riscv, from bookworm-backports on Debian 12",
        }
    }
}

/// A VM node's kernel and base initramfs: `vm/build.sh ARCH` run once into a directory named by
/// the architecture and the hash of the builder's sources (a lock file keeps two test binaries
/// from building the same one at once), under `SCPC_TESTBED_CACHE` if set (`.ci/run` keeps one
/// across runs on a machine), else under the target directory. Debian's package lists for it
/// live in their own apt state directory beside it.
pub fn vm_image(arch: VmArch) -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/testbed/vm");
    let mut sources = arch.name().as_bytes().to_vec();
    for f in ["build.sh", "init", "seccheck.c", "judge.c"] {
        sources.extend(std::fs::read(here.join(f)).expect("VM node sources"));
    }
    let cache = std::env::var_os("SCPC_TESTBED_CACHE").map(PathBuf::from);
    let tmp = cache.as_deref().unwrap_or(Path::new(env!("CARGO_TARGET_TMPDIR")));
    let dir = tmp.join(format!("vm-{}-{}", arch.name(), &sha256(&sources)[..16]));
    std::fs::create_dir_all(tmp).expect("target tmpdir");
    let lock = std::fs::File::create(tmp.join(format!("vm-{}.lock", arch.name()))).expect("lock file");
    lock.lock().expect("lock the VM image");
    if !dir.join("base.cpio.gz").exists() || !dir.join("kernel").exists() {
        let started = Instant::now();
        let out = Command::new("sh")
            .arg(here.join("build.sh"))
            .arg(arch.name())
            .arg(&dir)
            .arg(tmp.join(format!("apt-{}", arch.name())))
            .output()
            .expect("sh runs");
        assert!(
            out.status.success(),
            "building the {} node failed:\n{}{}",
            arch.name(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        eprintln!("built the {} node image in {:.1} s", arch.name(), started.elapsed().as_secs_f64());
    }
    dir
}

/// Builds policy `tests/deploy/FILE` (policy `policy`) into `out` under the fleet's root.
pub fn build_policy(fleet: &Fleet, file: &str, policy: &str, out: &str) -> PathBuf {
    let dir = fleet.root.join(out);
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/deploy").join(file);
    let (code, _, err) = support::scpc(&["build", src.to_str().expect("utf-8"), "--policy", policy, "-o", dir.to_str().expect("utf-8")]);
    assert_eq!(code, 0, "{err}");
    dir
}

/// Runs a fleet command (`deploy`, `status`, `rollback`) with `--json`; (exit status, the
/// report, stderr).
pub fn fleet_json(verb: &str, inv: &Path, extra: &[&str]) -> (i32, serde_json::Value, String) {
    let mut args = vec![verb, inv.to_str().expect("utf-8"), "--json"];
    if verb != "status" {
        args.extend(["--operator", "ci"]);
    }
    args.extend_from_slice(extra);
    let (code, out, err) = support::scpc(&args);
    let json = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}\n{err}"));
    (code, json, err)
}

/// One host's part of a report.
pub fn report_host<'a>(report: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    report["hosts"].as_array().expect("hosts").iter().find(|h| h["host"] == name).unwrap_or_else(|| panic!("{name} in {report:#}"))
}

/// The root of the systemd node: `systemd/build.sh` run once into a directory named by the
/// hash of the script, under `SCPC_TESTBED_CACHE` if set, else under the target directory (a
/// lock keeps two test programs from building it at once).
pub fn systemd_root() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/testbed/systemd");
    let script = std::fs::read(here.join("build.sh")).expect("systemd/build.sh");
    let cache = std::env::var_os("SCPC_TESTBED_CACHE").map(PathBuf::from);
    let tmp = cache.as_deref().unwrap_or(Path::new(env!("CARGO_TARGET_TMPDIR")));
    let dir = tmp.join(format!("systemd-{}", &sha256(&script)[..16]));
    std::fs::create_dir_all(tmp).expect("cache dir");
    let lock = std::fs::File::create(tmp.join("systemd.lock")).expect("lock file");
    lock.lock().expect("lock the systemd root");
    if !dir.join("root/usr/lib/systemd/systemd").exists() {
        let started = Instant::now();
        let out = Command::new("sh").arg(here.join("build.sh")).arg(&dir).output().expect("sh runs");
        assert!(
            out.status.success(),
            "building the systemd node's root failed (.ci/run installs debootstrap):\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        eprintln!("built the systemd node's root in {:.1} s", started.elapsed().as_secs_f64());
    }
    dir.join("root")
}

/// The tests' one support module (running the scpc binary, digests, probes).
#[path = "../support/mod.rs"]
pub mod support;
#[allow(unused_imports)] // not every test binary that includes the test bed runs scpc
pub use support::{scpc, sha256};

/// Delays every packet through a node's `eth0` by `one_way` in each direction, so that a round
/// trip gains twice that. This kernel has no netem: iptables' NFQUEUE target hands the packets
/// to queue 0 of the node's network namespace, where a thread of this process, moved into that
/// namespace, holds each one until it is due (in arrival order), then accepts it. The rules
/// bypass the queue when nobody listens, so the link works undelayed once the delayer is gone.
/// Dropping the value stops it.
pub struct Delayer {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// Packets held so far (shared with the thread).
    pub held: std::sync::Arc<AtomicUsize>,
}

impl Node {
    /// Starts a [`Delayer`] in front of the node.
    pub fn delay(&self, one_way: Duration) -> Delayer {
        Delayer::start(&[self], one_way)
    }
}

impl Delayer {
    /// One thread delays the links of all `nodes` (each must have its own network namespace):
    /// it opens a queue in each namespace in turn (a netlink socket stays in the namespace it
    /// was made in) and serves them all.
    pub fn start(nodes: &[&Node], one_way: Duration) -> Delayer {
        use std::os::fd::AsRawFd;
        use std::sync::atomic::AtomicBool;
        use std::sync::Arc;
        let names: Vec<String> = nodes.iter().map(|n| n.netns.clone().expect("a node with a network namespace")).collect();
        let stop = Arc::new(AtomicBool::new(false));
        let held = Arc::new(AtomicUsize::new(0));
        let (ready, started) = std::sync::mpsc::channel::<Result<(), String>>();
        let (stop2, held2) = (stop.clone(), held.clone());
        let thread = std::thread::spawn(move || {
            let open = |ns: &str| -> Result<nfq::Queue, String> {
                let f = std::fs::File::open(format!("/run/netns/{ns}")).map_err(|e| e.to_string())?;
                // SAFETY: setns on a valid namespace descriptor; it moves only this thread
                #[allow(unsafe_code)]
                let moved = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
                if moved != 0 {
                    return Err(format!("setns: {}", std::io::Error::last_os_error()));
                }
                let mut q = nfq::Queue::open().map_err(|e| format!("NFQUEUE: {e}"))?;
                q.bind(0).map_err(|e| format!("NFQUEUE bind: {e}"))?;
                q.set_copy_range(0, 0).map_err(|e| e.to_string())?;
                q.set_queue_max_len(0, 100_000).map_err(|e| e.to_string())?;
                q.set_nonblocking(true);
                Ok(q)
            };
            let mut queues = match names.iter().map(|ns| open(ns)).collect::<Result<Vec<_>, _>>() {
                Ok(q) => q,
                Err(e) => {
                    let _ = ready.send(Err(e));
                    return;
                }
            };
            let _ = ready.send(Ok(()));
            let mut held: Vec<std::collections::VecDeque<(Instant, nfq::Message)>> = queues.iter().map(|_| Default::default()).collect();
            loop {
                let now = Instant::now();
                for (q, waiting) in queues.iter_mut().zip(held.iter_mut()) {
                    loop {
                        match q.recv() {
                            Ok(m) => {
                                waiting.push_back((Instant::now() + one_way, m));
                                held2.fetch_add(1, Ordering::Relaxed);
                            }
                            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                            Err(e) => panic!("NFQUEUE recv: {e}"),
                        }
                    }
                    while waiting.front().is_some_and(|(due, _)| *due <= now) {
                        let (_, mut m) = waiting.pop_front().expect("front");
                        m.set_verdict(nfq::Verdict::Accept);
                        q.verdict(m).expect("NFQUEUE verdict");
                    }
                }
                if stop2.load(Ordering::Relaxed) && held.iter().all(|w| w.is_empty()) {
                    return;
                }
                std::thread::sleep(Duration::from_micros(200));
            }
        });
        started.recv().expect("delayer thread").unwrap_or_else(|e| panic!("the delayer could not start: {e}"));
        // nftables' own `queue` statement is not built into this kernel; xt NFQUEUE is
        for n in nodes {
            n.in_netns(
                "iptables -A INPUT -i eth0 -j NFQUEUE --queue-num 0 --queue-bypass && \
                 iptables -A OUTPUT -o eth0 -j NFQUEUE --queue-num 0 --queue-bypass",
            );
        }
        Delayer { stop, thread: Some(thread), held }
    }
}

impl Drop for Delayer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The time a TCP connection to `addr` takes to open (one round trip).
pub fn connect_time(addr: SocketAddr) -> Duration {
    let started = Instant::now();
    let _s = TcpStream::connect_timeout(&addr, Duration::from_secs(10)).expect("connect");
    started.elapsed()
}
