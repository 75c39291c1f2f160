#!/bin/sh
# Builds a test bed node for one architecture from Debian's packages (facts in ../NOTES.md):
#   OUT/kernel         Debian's kernel for ARCH (its ABI number resolved now, never pinned)
#   OUT/base.cpio.gz   busybox, dropbear and the libraries it needs, OpenSSH's sftp-server, the
#                      kernel modules the virtio network needs (with their dependencies, read from
#                      the modules themselves), `init`, `seccheck` and the judge (`judge.c`)
#   OUT/kernel-package the kernel package it came from
# The node's own files (host key, authorized key) are a second archive that the test bed
# appends; the kernel unpacks both.
#
#   ARCH      suite                      kernel                 judge built with
#   aarch64   this machine's (bookworm)  linux-image-arm64      aarch64-linux-gnu-gcc, plus an
#                                                               armhf one (judge-arm) for the
#                                                               arm (compat) half of its filters
#   arm       this machine's (bookworm)  linux-image-armmp      arm-linux-gnueabihf-gcc
#   riscv64   trixie (riscv64 is an official Debian architecture from Debian 13 on)
#                                        linux-image-riscv64    riscv64-linux-gnu-gcc
#
# The packages come through a private apt configuration (.ci/apt-private, state in APTDIR, one
# per architecture): the machine's sources and dpkg architectures are not touched. Needs cpio,
# xz, readelf and the cross compilers (.ci/run installs them).
# Usage: build.sh ARCH OUT APTDIR
set -eu
here=$(cd "$(dirname "$0")" && pwd)
arch=${1:?usage: build.sh ARCH OUT APTDIR}
out=${2:?usage: build.sh ARCH OUT APTDIR}
aptdir=${3:?usage: build.sh ARCH OUT APTDIR}
fail() { echo "build.sh: $*" >&2; exit 1; }
codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")
extra_cc= cflags=
case "$arch" in
    aarch64) deb=arm64 suite=$codename kernel_meta=linux-image-arm64 triplet=aarch64-linux-gnu
        cc=aarch64-linux-gnu-gcc extra_cc=arm-linux-gnueabihf-gcc ;;
    arm) deb=armhf suite=$codename kernel_meta=linux-image-armmp triplet=arm-linux-gnueabihf
        cc=arm-linux-gnueabihf-gcc cflags=-marm ;;
    riscv64) deb=riscv64 suite=trixie kernel_meta=linux-image-riscv64 triplet=riscv64-linux-gnu
        cc=riscv64-linux-gnu-gcc ;;
    *) fail "unknown architecture $arch (aarch64, arm or riscv64)" ;;
esac
for c in cpio $cc $extra_cc dpkg-deb apt-get gzip xz readelf; do
    command -v "$c" >/dev/null || fail "needs $c (.ci/run installs it: cpio, xz-utils, binutils, gcc-${triplet%%-*}-linux-gnu*)"
done
apt_private() {
    "$here/../../../../.ci/apt-private" "$aptdir" "$suite,$suite-updates,$suite-security" "amd64,$deb" "$@"
}
mkdir -p "$(dirname "$out")"
out=$(cd "$(dirname "$out")" && pwd)/$(basename "$out")
work=$(mktemp -d "$out.work.XXXXXX")
trap 'rm -rf "$work"' EXIT

kernel=$(apt_private apt-cache depends "$kernel_meta:$deb" | awk '/Depends: linux-image-[0-9]/ { print $2; exit }')
[ -n "$kernel" ] || fail "cannot resolve $kernel_meta:$deb to a kernel package"
# dropbear's libraries differ between suites: the closure of NEEDED is checked below
(cd "$work" && apt_private apt-get download -q "$kernel" busybox-static:$deb dropbear-bin:$deb \
    libc6:$deb libcrypt1:$deb libtomcrypt1:$deb libtommath1:$deb libgmp10:$deb zlib1g:$deb \
    openssh-sftp-server:$deb >/dev/null) || fail "apt-get download failed"
x=$work/x
for p in "$work"/*.deb; do dpkg-deb -x "$p" "$x"; done

# one merged-/usr tree whatever the suite's layout (bookworm ships /lib, trixie /usr/lib)
root=$work/root
mkdir -p "$root/usr/bin" "$root/usr/sbin" "$root/usr/lib/modules" "$root/etc/dropbear" "$root/root"
cp -a "$x/usr/." "$root/usr/"
for d in bin sbin lib; do
    [ ! -d "$x/$d" ] || cp -a "$x/$d/." "$root/usr/$d/"
    ln -s "usr/$d" "$root/$d"
done
rm -rf "$root/usr/share" "$root/usr/lib/linux-image-"* "$root/usr/lib/$triplet/gconv" "$root/usr/lib/modules/"*

# the libraries the programs need, all present
for f in "$root/usr/sbin/dropbear" "$root/usr/lib/openssh/sftp-server" "$root/usr/bin/scp" "$root/usr/bin/dbclient"; do
    [ -e "$f" ] || continue
    for lib in $(readelf -d "$f" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
        [ -e "$root/usr/lib/$triplet/$lib" ] || fail "$(basename "$f") needs $lib, which no downloaded package of $suite/$deb has"
    done
done
loader=$(readelf -l "$root/usr/sbin/dropbear" | sed -n 's/.*interpreter: \(.*\)\]/\1/p')
[ -e "$root$loader" ] || fail "the dynamic loader $loader is missing"

# modules: the virtio network and random number generator, and what they depend on (read from
# each module's .modinfo); the ones built into this kernel are skipped. init loads them in order.
moddir=$(find "$x" -path '*/modules/*' -name modules.builtin | head -n 1)
[ -n "$moddir" ] || fail "$kernel has no modules.builtin"
moddir=$(dirname "$moddir")
: > "$work/load"
want() {
    local name ko dep
    name=$(echo "$1" | tr - _)
    grep -qx "$name" "$work/load" && return 0
    grep -q "/$(echo "$name" | sed 's/_/[-_]/g')\.ko" "$moddir/modules.builtin" && return 0
    ko=$(find "$moddir/kernel" -regextype posix-extended -regex ".*/$(echo "$name" | sed 's/_/[-_]/g')\.ko(\.xz|\.zst)?" | head -n 1)
    [ -n "$ko" ] || fail "module $name is neither in $kernel nor built into it"
    case "$ko" in
        *.xz) xz -dc "$ko" > "$work/$name.ko" ;;
        *.zst) zstd -qdc "$ko" > "$work/$name.ko" ;;
        *) cp "$ko" "$work/$name.ko" ;;
    esac
    for dep in $(tr '\0' '\n' < "$work/$name.ko" | sed -n 's/^depends=//p' | tr , ' '); do
        want "$dep"
    done
    mv "$work/$name.ko" "$root/usr/lib/modules/"
    echo "$name" >> "$work/load"
}
for m in virtio_pci virtio_net virtio_rng; do want "$m"; done
cp "$work/load" "$root/usr/lib/modules/load"

ln -s busybox "$root/usr/bin/sh"
[ -e "$root/usr/lib/sftp-server" ] || ln -s openssh/sftp-server "$root/usr/lib/sftp-server"
printf 'root:x:0:0:root:/root:/bin/sh\n' > "$root/etc/passwd"
printf 'root:x:0:\n' > "$root/etc/group"
printf '/bin/sh\n' > "$root/etc/shells"
echo "edge-$arch" > "$root/etc/hostname"
chmod 700 "$root/root"
cp "$here/init" "$root/init"
chmod 755 "$root/init"
$cc -static -O2 -Wall -o "$root/usr/bin/seccheck" "$here/seccheck.c"
$cc -static -O2 -Wall $cflags -o "$root/usr/bin/judge" "$here/judge.c"
[ -z "$extra_cc" ] || $extra_cc -static -O2 -Wall -marm -o "$root/usr/bin/judge-arm" "$here/judge.c"

(cd "$root" && find . | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) | gzip -6 > "$work/base.cpio.gz"
image=$(find "$x/boot" -name 'vmlinuz-*' -o -name 'vmlinux-*' | head -n 1)
[ -n "$image" ] || fail "$kernel has no kernel image in /boot"
cp "$image" "$work/kernel"
echo "$kernel" > "$work/kernel-package"
mkdir -p "$out"
mv "$work/base.cpio.gz" "$work/kernel" "$work/kernel-package" "$out/"
