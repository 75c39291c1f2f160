#!/bin/sh
# Builds the test bed's aarch64 node from Debian's arm64 packages, as the test bed notes measured:
#   OUT/vmlinuz        Debian's arm64 kernel (its ABI number resolved now, never pinned)
#   OUT/base.cpio.gz   busybox, dropbear and its libraries, OpenSSH's sftp-server, the seven
#                      virtio modules Debian builds as modules, `init`, and `seccheck`
# The node's own files (host key, authorized key) are a second archive that the test bed
# appends; the kernel unpacks both.
# Debian's arm64 packages come through a private apt configuration (.ci/apt-private, state beside
# OUT): the machine's sources and dpkg architectures are not touched. Needs cpio and
# gcc-aarch64-linux-gnu (.ci/run installs them). Usage: build.sh OUT
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out=${1:?usage: build.sh OUT}
mkdir -p "$(dirname "$out")"
out=$(cd "$(dirname "$out")" && pwd)/$(basename "$out")
fail() { echo "build.sh: $*" >&2; exit 1; }
codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")
apt_private() {
    "$here/../../../../.ci/apt-private" "$(dirname "$out")/apt-arm64" \
        "$codename,$codename-updates,$codename-security" amd64,arm64 "$@"
}
for c in cpio aarch64-linux-gnu-gcc dpkg-deb apt-get gzip; do
    command -v $c >/dev/null || fail "needs $c (apt-get install cpio gcc-aarch64-linux-gnu)"
done
mkdir -p "$(dirname "$out")"
work=$(mktemp -d "$out.work.XXXXXX")
trap 'rm -rf "$work"' EXIT

kernel=$(apt_private apt-cache depends linux-image-arm64:arm64 | awk '/Depends: linux-image-[0-9]/ { print $2; exit }')
[ -n "$kernel" ] || fail "cannot resolve linux-image-arm64:arm64 to a kernel package"
(cd "$work" && apt_private apt-get download -q "$kernel" busybox-static:arm64 \
    dropbear-bin:arm64 libc6:arm64 libcrypt1:arm64 libtomcrypt1:arm64 libtommath1:arm64 \
    libgmp10:arm64 zlib1g:arm64 openssh-sftp-server:arm64 >/dev/null) || fail "apt-get download failed"
x=$work/x
for deb in "$work"/*.deb; do dpkg-deb -x "$deb" "$x"; done

root=$work/root
mkdir -p "$root/lib/modules" "$root/usr/bin" "$root/etc/dropbear" "$root/root"
cp -a "$x/bin" "$x/usr" "$root/"
cp -a "$x/lib/aarch64-linux-gnu" "$x/lib/ld-linux-aarch64.so.1" "$root/lib/"
rm -rf "$root/usr/share" "$root/usr/lib/linux-image-"* "$root/usr/lib/aarch64-linux-gnu/gconv"
for m in failover net_failover virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci virtio_net virtio-rng; do
    ko=$(find "$x/lib/modules" -name "$m.ko" | head -n 1)
    [ -n "$ko" ] || fail "module $m.ko is not in $kernel"
    cp "$ko" "$root/lib/modules/"
done
ln -s busybox "$root/bin/sh"
printf 'root:x:0:0:root:/root:/bin/sh\n' > "$root/etc/passwd"
printf 'root:x:0:\n' > "$root/etc/group"
printf '/bin/sh\n' > "$root/etc/shells"
chmod 700 "$root/root"
cp "$here/init" "$root/init"
chmod 755 "$root/init"
aarch64-linux-gnu-gcc -static -O2 -Wall -o "$root/usr/bin/seccheck" "$here/seccheck.c"

(cd "$root" && find . | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) | gzip -6 > "$work/base.cpio.gz"
cp "$x/boot/vmlinuz-"* "$work/vmlinuz"
mkdir -p "$out"
mv "$work/base.cpio.gz" "$work/vmlinuz" "$out/"
echo "$kernel" > "$out/kernel"
