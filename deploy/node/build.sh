#!/bin/sh
# Builds the node program, static, for every architecture scpc deploys to, into the layout the
# deployer reads (OUT/ARCH/scpc-node), and prints each one's size and sha256.
#
#   ARCH     rust target (the first one installed)                      linker
#   x86_64   x86_64-unknown-linux-musl                                  cc
#   i386     i686-unknown-linux-musl                                    i686-linux-gnu-gcc
#   aarch64  aarch64-unknown-linux-musl                                 aarch64-linux-gnu-gcc
#   arm      armv7-unknown-linux-musleabihf, armv7-unknown-linux-gnueabihf   arm-linux-gnueabihf-gcc
#   riscv64  riscv64gc-unknown-linux-musl, riscv64gc-unknown-linux-gnu  riscv64-linux-gnu-gcc
#
# A glibc target is linked statically (+crt-static) where its musl target is not to be had;
# the program then uses no glibc function that needs shared objects at run time (no name
# lookups). Every result is checked to have no program interpreter.
#
# Usage: build.sh [--install] [--arch ARCH]... OUT
#   --install  add the rust targets that are missing (rustup target add; a musl target that
#              cannot be had falls back to the glibc one)
#   --arch     only these architectures (default: all five)
# The build directory is target/node of the workspace (CARGO_TARGET_DIR is not used: the
# tests build here while cargo holds the workspace's own).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
install=no arches=
while [ $# -gt 1 ]; do
    case "$1" in
        --install) install=yes ;;
        --arch) shift; arches="$arches $1" ;;
        *) echo "build.sh: unknown option $1" >&2; exit 1 ;;
    esac
    shift
done
out=${1:?usage: build.sh [--install] [--arch ARCH]... OUT}
[ -n "$arches" ] || arches="x86_64 i386 aarch64 arm riscv64"

candidates() {
    case "$1" in
        x86_64) echo "x86_64-unknown-linux-musl" ;;
        i386) echo "i686-unknown-linux-musl" ;;
        aarch64) echo "aarch64-unknown-linux-musl" ;;
        arm) echo "armv7-unknown-linux-musleabihf armv7-unknown-linux-gnueabihf" ;;
        riscv64) echo "riscv64gc-unknown-linux-musl riscv64gc-unknown-linux-gnu" ;;
        *) echo "build.sh: unknown architecture $1" >&2; exit 1 ;;
    esac
}
linker() {
    case "$1" in
        x86_64) echo cc ;;
        i386) echo i686-linux-gnu-gcc ;;
        aarch64) echo aarch64-linux-gnu-gcc ;;
        arm) echo arm-linux-gnueabihf-gcc ;;
        riscv64) echo riscv64-linux-gnu-gcc ;;
    esac
}
installed() { [ -d "$(rustc --print target-libdir --target "$1" 2>/dev/null)" ]; }

targets=
for arch in $arches; do
    chosen=
    for t in $(candidates "$arch"); do
        if installed "$t"; then chosen=$t; break; fi
    done
    if [ -z "$chosen" ] && [ "$install" = yes ]; then
        for t in $(candidates "$arch"); do
            if rustup target add "$t" >/dev/null 2>&1; then chosen=$t; break; fi
        done
    fi
    [ -n "$chosen" ] || { echo "build.sh: no rust target for $arch is installed (rustup target add $(candidates "$arch" | cut -d' ' -f1); .ci/run does it)" >&2; exit 1; }
    l=$(linker "$arch")
    command -v "$l" >/dev/null || { echo "build.sh: the linker $l for $arch is missing (.ci/run installs Debian's cross compilers)" >&2; exit 1; }
    var=$(echo "$chosen" | tr 'a-z-' 'A-Z_')
    export "CARGO_TARGET_${var}_LINKER=$l"
    case "$chosen" in *-gnu*) export "CARGO_TARGET_${var}_RUSTFLAGS=-C target-feature=+crt-static" ;; esac
    targets="$targets $arch:$chosen"
done

set --
for at in $targets; do set -- "$@" --target "${at#*:}"; done
cd "$root"
cargo build --quiet --locked -p scpc-node --bin scpc-node --profile node --target-dir "$root/target/node" "$@"

mkdir -p "$out"
for at in $targets; do
    arch=${at%%:*} t=${at#*:}
    bin=$root/target/node/$t/node/scpc-node
    if readelf -l "$bin" | grep -q INTERP; then
        echo "build.sh: $bin is not static" >&2
        exit 1
    fi
    mkdir -p "$out/$arch"
    # replaced whole, never rewritten in place (a deployer may be reading the old one)
    cp "$bin" "$out/$arch/.scpc-node.tmp"
    mv -f "$out/$arch/.scpc-node.tmp" "$out/$arch/scpc-node"
    printf '%-8s %-32s %8s bytes  %s\n' "$arch" "$t" "$(wc -c < "$out/$arch/scpc-node" | tr -d ' ')" "$(sha256sum "$out/$arch/scpc-node" | cut -c1-16)"
done
