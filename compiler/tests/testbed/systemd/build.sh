#!/bin/sh
# Builds the root of the test bed's systemd node (facts in ../NOTES.md): Debian (this machine's
# suite) from its packages with debootstrap, booted by the test bed with `systemd-nspawn -b`:
# a real systemd as PID 1, OpenSSH's sshd, and a service unit (`edge-probe.service`) that the
# tests deploy a filter to.
#   OUT/root   the root file system (about 3 minutes to make on 2 cores; the test bed keeps it
#              under SCPC_TESTBED_CACHE, keyed by this script's hash)
# Usage: build.sh OUT
set -eu
out=${1:?usage: build.sh OUT}
command -v debootstrap >/dev/null || { echo "build.sh: needs debootstrap (.ci/run installs it)" >&2; exit 1; }
suite=$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")
mirror=$(sed -n 's/^URIs: *\(http[^ ]*debian\)$/\1/p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -n 1)
[ -n "$mirror" ] || mirror=$(awk '$1 == "deb" && $2 ~ /debian$/ { print $2; exit }' /etc/apt/sources.list 2>/dev/null)
[ -n "$mirror" ] || mirror=http://deb.debian.org/debian
mkdir -p "$(dirname "$out")"
work=$(mktemp -d "$out.work.XXXXXX")
trap 'rm -rf "$work"' EXIT
root=$work/root
debootstrap --variant=minbase --include=systemd,systemd-sysv,dbus,openssh-server,procps "$suite" "$root" "$mirror" >"$work/log" 2>&1 \
    || { tail -n 30 "$work/log" >&2; exit 1; }
# sshd: keys from the test bed (bound in at boot), root by key only, no PAM delays
cat > "$root/etc/ssh/sshd_config.d/scpc.conf" <<'EOF'
HostKey /etc/ssh/scpc/host_key
AuthorizedKeysFile /etc/ssh/scpc/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
MaxStartups 100
StrictModes no
EOF
rm -f "$root"/etc/ssh/ssh_host_*
mkdir -p "$root/etc/ssh/scpc" "$root/srv/edge" "$root/var/lib/scpc"
# the real service: a loop that calls uname(2) every 200 ms and writes what it got
cat > "$root/etc/systemd/system/edge-probe.service" <<'EOF'
[Unit]
Description=scpc test bed service: calls uname(2) in a loop

[Service]
ExecStart=/bin/sh -c 'while :; do uname -m > /run/edge-probe.out 2>&1 || echo "uname failed" >> /run/edge-probe.out; sleep 0.2; done'

[Install]
WantedBy=multi-user.target
EOF
ln -s /etc/systemd/system/edge-probe.service "$root/etc/systemd/system/multi-user.target.wants/edge-probe.service"
# nothing that waits for a network or a console
for u in systemd-networkd-wait-online.service getty@tty1.service console-getty.service systemd-timesyncd.service; do
    ln -sf /dev/null "$root/etc/systemd/system/$u"
done
echo "scpc-systemd" > "$root/etc/hostname"
mkdir -p "$out"
mv "$root" "$out/root"
