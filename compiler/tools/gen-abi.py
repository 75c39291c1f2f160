#!/usr/bin/env python3
"""Generate scpc's kernel ABI tables (compiler/src/abi/tables/*.rs) from compiler/abi-sources.

Usage: gen-abi.py [--abi DIR] [--out DIR] [--stdlib DIR] [--check]

Each syscall row becomes a `Syscall` record with its number, name, first kernel version,
kconfig option, removal note and parameters (name, C type, width as the kernel reads it on
that architecture, pointer or not). The width rules live here, in one table, so that a new
C type in the sources fails the generator instead of being guessed:

* 64-bit architectures (x86_64, x32, aarch64, riscv64): `long`, `size_t`, `loff_t`, `u64`
  and pointers are compared on all 64 bits; `int`, `u32`, `pid_t`... on the low 32 bits;
  `umode_t` and the old 16-bit uid types on the low 16 bits (SYSCALL_DEFINE casts each
  register to the declared type, so the kernel itself ignores the rest).
* 32-bit architectures (i386, arm): registers are 32 bits, so everything is at most 32 bits,
  and a 64-bit parameter (`loff_t`, `u64`) is split over two registers, low half first (all
  targets are little-endian): on i386 the next two; on arm (EABI) the next even-odd pair, so
  an odd register before it is left as padding. The pair is recorded (`reg`, `reg_hi`) and
  compared as one 64-bit value; the parameters after it get the registers they really use.
* `narrowing.tsv`: parameters the kernel reads narrower than declared on 64-bit architectures
  (clone's flags through lower_32_bits, an fd through fget(unsigned int)...) get the width
  the kernel acts on, and the reason.
* `unfiltered.tsv`: syscall numbers the kernel lets through before running the filter.
* `families.tsv`: calls that do the same operation (open, openat, openat2...), written to
  `tables/families.rs` and, as groups of the standard library, to
  `stdlib-policies/families.scp`; every member must be a syscall of some architecture.
* `runtime-calls.tsv`: calls the run-time of a program makes on one architecture and not on
  x86_64 (OpenSSL's SIGILL probes on arm), written to `tables/runtime.rs`; each must be a
  syscall of its architecture.
* `param-aliases.tsv`: the manual pages' parameter names that differ from the kernel's
  (`socket`'s `domain` is `family`), written to `tables/aliases.rs`; each must name a kernel
  parameter of its syscall, and none may be a kernel name of that syscall or an `argN`.

With --check, nothing is written; exit status 1 if a committed file differs.
"""
import argparse
import hashlib
import os
import re
import sys

ARCHES = ["x86_64", "x32", "i386", "aarch64", "arm", "riscv64"]
BITS32 = {"i386", "arm"}

POINTER_TYPEDEFS = {"cap_user_header_t", "cap_user_data_t", "__sighandler_t"}
W64_TYPES = {"long", "unsigned long", "size_t", "ssize_t", "off_t", "aio_context_t",
             "uintptr_t", "old_sigset_t"}
SPLIT64_TYPES = {"loff_t", "u64", "__u64", "s64", "__s64", "long long", "unsigned long long"}
W32_TYPES = {"int", "unsigned int", "unsigned", "u32", "__u32", "s32", "__s32", "pid_t",
             "uid_t", "gid_t", "clockid_t", "timer_t", "mqd_t", "key_t", "key_serial_t",
             "rwf_t", "qid_t", "compat_size_t", "compat_ulong_t", "compat_long_t",
             "compat_pid_t", "compat_aio_context_t"}
W16_TYPES = {"umode_t", "old_uid_t", "old_gid_t"}

def die(msg):
    sys.stderr.write("gen-abi: " + msg + "\n")
    sys.exit(2)


def width_of(ctype, arch):
    """Returns (width, pointer) for a C parameter type on an architecture."""
    t = re.sub(r"\bconst\b", "", ctype).strip()
    t = re.sub(r"\s+", " ", t)
    if "*" in t or t in POINTER_TYPEDEFS:
        return ("W32" if arch in BITS32 else "W64"), True
    if t.startswith("enum "):
        return "W32", False
    if t in W16_TYPES:
        return "W16", False
    if t in W32_TYPES:
        return "W32", False
    if t in W64_TYPES:
        return ("W32" if arch in BITS32 else "W64"), False
    if t in SPLIT64_TYPES:
        return ("Split" if arch in BITS32 else "W64"), False
    die(f"unknown C type {ctype!r} on {arch}: classify it in gen-abi.py")


def parse_version(text):
    m = re.fullmatch(r"v(\d+)\.(\d+)", text)
    if not m:
        die(f"bad version {text!r}")
    return int(m.group(1)), int(m.group(2))


def since_expr(text):
    if text == "":
        return "Since::Never"
    if text.startswith("<="):
        return "Since::AtMost(KernelVersion::new(%d, %d))" % parse_version(text[2:])
    if text.startswith(">"):
        return "Since::After(KernelVersion::new(%d, %d))" % parse_version(text[1:])
    return "Since::Exact(KernelVersion::new(%d, %d))" % parse_version(text)


def rust_str(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def sha(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def read_tsv(path, columns):
    with open(path) as f:
        lines = [l for l in f.read().splitlines() if not l.startswith("#")]
    if lines[0].split("\t") != columns:
        die(f"{path}: unexpected column header")
    rows = []
    for ln, l in enumerate(lines[1:], start=2):
        cols = l.split("\t")
        if len(cols) != len(columns):
            die(f"{path}: row {ln}: expected {len(columns)} columns")
        rows.append(dict(zip(columns, cols)))
    return rows


def gen_arch(abi_dir, arch):
    path = os.path.join(abi_dir, arch + ".tsv")
    with open(path) as f:
        lines = f.read().splitlines()
    meta = dict(kv.split("=", 1) for kv in lines[0].lstrip("# ").split())
    if meta.get("arch") != arch:
        die(f"{path}: header names arch {meta.get('arch')!r}")
    if lines[1].split("\t") != ["nr", "name", "since", "signature", "kconfig", "note"]:
        die(f"{path}: unexpected column header")
    narrowing = {}
    if arch not in BITS32:
        for r in read_tsv(os.path.join(abi_dir, "narrowing.tsv"), ["syscall", "param", "bits", "why"]):
            narrowing[(r["syscall"], r["param"])] = ({"16": "W16", "32": "W32"}[r["bits"]], r["why"])
    unfiltered = {r["name"]: r["since"] for r in read_tsv(os.path.join(abi_dir, "unfiltered.tsv"), ["arch", "name", "since", "why"])
                  if r["arch"] == arch}
    used_narrowing = set()
    rows = []
    seen = set()
    for ln, line in enumerate(lines[2:], start=3):
        cols = line.split("\t")
        if len(cols) != 6:
            die(f"{path}:{ln}: expected 6 columns")
        nr, name, since, sig, kconfig, note = cols
        if name in seen:
            die(f"{path}:{ln}: duplicate syscall {name}")
        seen.add(name)
        params = []
        reg = 0
        for item in filter(None, sig.split(";")):
            m = re.fullmatch(r"(.*?)\s*\b([A-Za-z_][A-Za-z0-9_]*)", item.strip())
            if not m:
                die(f"{path}:{ln}: cannot read parameter {item!r}")
            ctype, pname = m.group(1).strip(), m.group(2)
            width, pointer = width_of(ctype, arch)
            reg_hi = "None"
            if width == "Split":
                if arch == "arm" and reg % 2 == 1:
                    reg += 1  # EABI: a 64-bit value starts in an even register
                width, lo, reg_hi = "W64", reg, "Some(%d)" % (reg + 1)
                reg += 2
            else:
                lo = reg
                reg += 1
            if reg > 6:
                die(f"{path}:{ln}: {name}'s {pname} does not fit in six registers")
            narrowed = ""
            if (name, pname) in narrowing:
                width, narrowed = narrowing[(name, pname)]
                used_narrowing.add((name, pname))
            params.append("Param { name: %s, ctype: %s, width: Width::%s, pointer: %s, reg: %d, reg_hi: %s, narrowed: %s }"
                          % (rust_str(pname), rust_str(ctype), width, "true" if pointer else "false", lo, reg_hi,
                             rust_str(narrowed)))
        removed = "None"
        m = re.fullmatch(r"not in tables after (v\d+\.\d+)", note)
        if m:
            removed = "Some(KernelVersion::new(%d, %d))" % parse_version(m.group(1))
        elif note not in ("", "no implementation in the tables' kernel builds"):
            die(f"{path}:{ln}: unknown note {note!r}")
        unfiltered_since = "None"
        if name in unfiltered:
            unfiltered_since = "Some(KernelVersion::new(%d, %d))" % parse_version(unfiltered.pop(name))
        rows.append("    Syscall {\n        nr: %d,\n        name: %s,\n        since: %s,\n"
                    "        kconfig: %s,\n        removed_after: %s,\n        unfiltered_since: %s,\n"
                    "        params: &[%s],\n    },"
                    % (int(nr), rust_str(name), since_expr(since), rust_str(kconfig), removed,
                       unfiltered_since, ", ".join(params)))
    if unfiltered:
        die(f"unfiltered.tsv names {sorted(unfiltered)} that {arch} does not have")
    if arch not in BITS32 and set(narrowing) - used_narrowing:
        die(f"narrowing.tsv names {sorted(set(narrowing) - used_narrowing)} that {arch} does not have")
    out = [
        f"// generated by compiler/tools/gen-abi.py from compiler/abi-sources/{arch}.tsv; do not edit.",
        f"// source sha256 {sha(path)}; narrowing.tsv {sha(os.path.join(abi_dir, 'narrowing.tsv'))[:16]};"
        f" unfiltered.tsv {sha(os.path.join(abi_dir, 'unfiltered.tsv'))[:16]}",
        f"// provenance: {lines[0].lstrip('# ')} (mebeim/linux-syscalls tables and libseccomp's",
        "// syscalls.csv, as compiler/abi-sources/README.md says)",
        "",
        "use crate::abi::{KernelVersion, Param, Since, Syscall, Width};",
        "",
        f"/// AUDIT_ARCH value of {arch}, as `seccomp_data.arch` carries it.",
        f"pub const AUDIT_ARCH: u32 = {meta['audit_arch']};",
        f"/// What `seccomp_data.nr` carries on top of the table number ({arch}).",
        f"pub const NR_OFFSET: u32 = {meta['nr_includes_offset']};",
        "",
        f"/// The syscalls of {arch}, sorted by number.",
        "pub static SYSCALLS: &[Syscall] = &[",
    ]
    return "\n".join(out + rows + ["];", ""])


def gen_constants(abi_dir):
    """One table per architecture, from constants-ARCH.tsv (each read from that architecture's
    own headers by extract-constants.py)."""
    out = [
        "// generated by compiler/tools/gen-abi.py from compiler/abi-sources/constants-*.tsv; do not edit.",
    ]
    tables = []
    for arch in ARCHES:
        path = os.path.join(abi_dir, f"constants-{arch}.tsv")
        with open(path) as f:
            lines = f.read().splitlines()
        out.append(f"// constants-{arch}.tsv sha256 {sha(path)}")
        body = [l for l in lines if not l.startswith("#")]
        if body[0] != "name\tvalue":
            die(f"{path}: unexpected column header")
        rows = []
        for l in body[1:]:
            name, value = l.split("\t")
            rows.append("    (%s, %d)," % (rust_str(name), int(value)))
        tables.append(f"/// The uapi constants of {arch}, read from its own headers.")
        tables.append(f"pub static {arch.upper()}: &[(&str, i64)] = &[")
        tables += rows
        tables.append("];")
    out.append("// provenance: each architecture's uapi and C library headers (Debian linux-libc-dev*-cross,")
    out.append("// libc6-dev*-cross), as compiler/abi-sources/README.md says.")
    out.append("")
    return "\n".join(out + tables + [""])


def syscall_params(abi_dir):
    """syscall -> [set of its kernel parameter names on one architecture], one per architecture
    that has it."""
    out = {}
    for arch in ARCHES:
        path = os.path.join(abi_dir, arch + ".tsv")
        with open(path) as f:
            for line in f.read().splitlines()[2:]:
                cols = line.split("\t")
                names = set()
                for item in filter(None, cols[3].split(";")):
                    m = re.fullmatch(r"(.*?)\s*\b([A-Za-z_][A-Za-z0-9_]*)", item.strip())
                    if m:
                        names.add(m.group(2))
                out.setdefault(cols[1], []).append(names)
    return out


GROUP_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")


def read_families(abi_dir, params):
    path = os.path.join(abi_dir, "families.tsv")
    rows = read_tsv(path, ["family", "members", "operation"])
    seen = set()
    out = []
    for r in rows:
        name = r["family"]
        if not GROUP_NAME.fullmatch(name) or name in seen:
            die(f"{path}: family {name!r} is not a group name, or is given twice")
        seen.add(name)
        members = [m.strip() for m in r["members"].split(",")]
        if len(set(members)) != len(members) or len(members) < 2:
            die(f"{path}: family {name} must list at least two distinct calls")
        for m in members:
            if m not in params:
                die(f"{path}: {m} of family {name} is a syscall of no architecture")
        out.append((name, members, r["operation"]))
    return path, out


def gen_families(abi_dir, params):
    path, families = read_families(abi_dir, params)
    out = [
        "// generated by compiler/tools/gen-abi.py from compiler/abi-sources/families.tsv; do not edit.",
        f"// source sha256 {sha(path)}",
        "",
        "use crate::abi::Family;",
        "",
        "/// The syscall families, in the order of families.tsv.",
        "pub static FAMILIES: &[Family] = &[",
    ]
    for name, members, operation in families:
        out.append("    Family { name: %s, members: &[%s], operation: %s },"
                   % (rust_str(name), ", ".join(rust_str(m) for m in members), rust_str(operation)))
    return "\n".join(out + ["];", ""])


def wrap_list(head, items, width=100):
    """`head a, b, c` wrapped as scpc fmt wraps lists: continuation lines indented by four."""
    lines, line = [], head
    for i, item in enumerate(items):
        piece = item + ("," if i + 1 < len(items) else "")
        if line != head and len(line) + 1 + len(piece) > width:
            lines.append(line)
            line = "    " + piece
        else:
            line = line + (" " if line else "") + piece
    lines.append(line)
    return "\n".join(lines)


def gen_families_scp(abi_dir, params):
    _, families = read_families(abi_dir, params)
    out = [
        "# Syscall families: calls that do the same operation, whichever an architecture has, so that",
        "# one rule means the operation on every architecture (`allow @file-open` is open, openat,",
        "# openat2 and creat, each where the architecture has it). Written by compiler/tools/gen-abi.py",
        "# from compiler/abi-sources/families.tsv; do not edit. See docs/stdlib/families.md.",
    ]
    for name, members, operation in families:
        out.append("")
        out.append(f"# @{name}: {operation}.")
        out.append(wrap_list(f"group {name} =", members))
    return "\n".join(out) + "\n"


def gen_runtime(abi_dir):
    path = os.path.join(abi_dir, "runtime-calls.tsv")
    rows = read_tsv(path, ["arch", "syscall", "why"])
    names = {}
    for arch in ARCHES:
        with open(os.path.join(abi_dir, arch + ".tsv")) as f:
            names[arch] = {l.split("\t")[1] for l in f.read().splitlines()[2:]}
    out = [
        "// generated by compiler/tools/gen-abi.py from compiler/abi-sources/runtime-calls.tsv; do not edit.",
        f"// source sha256 {sha(path)}",
        "",
        "use crate::abi::{Arch, RuntimeCall};",
        "",
        "/// Calls of one architecture's program run-time that a trace on x86_64 never shows.",
        "pub static RUNTIME_CALLS: &[RuntimeCall] = &[",
    ]
    variants = {"x86_64": "X86_64", "x32": "X32", "i386": "I386", "aarch64": "Aarch64", "arm": "Arm", "riscv64": "Riscv64"}
    for r in rows:
        if r["arch"] not in names or r["syscall"] not in names[r["arch"]]:
            die(f"{path}: {r['syscall']} is not a syscall of {r['arch']}")
        out.append("    RuntimeCall { arch: Arch::%s, syscall: %s, why: %s },"
                   % (variants[r["arch"]], rust_str(r["syscall"]), rust_str(r["why"])))
    return "\n".join(out + ["];", ""])


def gen_aliases(abi_dir, params):
    path = os.path.join(abi_dir, "param-aliases.tsv")
    rows = read_tsv(path, ["syscall", "alias", "kernel", "source"])
    out = [
        "// generated by compiler/tools/gen-abi.py from compiler/abi-sources/param-aliases.tsv; do not edit.",
        f"// source sha256 {sha(path)}",
        "",
        "use crate::abi::ParamAlias;",
        "",
        "/// The manual pages' parameter names that differ from the kernel's, sorted by syscall and alias.",
        "pub static PARAM_ALIASES: &[ParamAlias] = &[",
    ]
    seen = set()
    for r in rows:
        sysc, alias, kernel = r["syscall"], r["alias"], r["kernel"]
        per_arch = params.get(sysc)
        if per_arch is None:
            die(f"{path}: {sysc} is a syscall of no architecture")
        with_kernel = [names for names in per_arch if kernel in names]
        if not with_kernel:
            die(f"{path}: {sysc} has no kernel parameter {kernel}")
        # (an alias may be the kernel's name on another architecture: riscv64 calls mmap's
        # last parameter `offset`, x86_64 `off`; where both exist it would be ambiguous)
        if any(alias in names for names in with_kernel) or re.fullmatch(r"arg\d+", alias) \
                or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", alias):
            die(f"{path}: alias {alias} of {sysc} is a kernel parameter name beside {kernel}, an argN or not a name")
        if (sysc, alias) in seen:
            die(f"{path}: alias {alias} of {sysc} given twice")
        seen.add((sysc, alias))
        out.append("    ParamAlias { syscall: %s, alias: %s, kernel: %s, source: %s },"
                   % (rust_str(sysc), rust_str(alias), rust_str(kernel), rust_str(r["source"])))
    if [(r["syscall"], r["alias"]) for r in rows] != sorted(seen):
        die(f"{path}: rows must be sorted by syscall and alias")
    return "\n".join(out + ["];", ""])


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser()
    ap.add_argument("--abi", default=os.path.join(here, "../abi-sources"))
    ap.add_argument("--out", default=os.path.join(here, "../src/abi/tables"))
    ap.add_argument("--stdlib", default=os.path.join(here, "../../stdlib-policies"))
    ap.add_argument("--check", action="store_true")
    args = ap.parse_args()
    files = {a + ".rs": gen_arch(args.abi, a) for a in ARCHES}
    files["constants.rs"] = gen_constants(args.abi)
    params = syscall_params(args.abi)
    files["families.rs"] = gen_families(args.abi, params)
    files["aliases.rs"] = gen_aliases(args.abi, params)
    files["runtime.rs"] = gen_runtime(args.abi)
    targets = {name: os.path.join(args.out, name) for name in files}
    files["families.scp"] = gen_families_scp(args.abi, params)
    targets["families.scp"] = os.path.join(args.stdlib, "families.scp")
    stale = []
    for name, text in files.items():
        target = targets[name]
        old = open(target).read() if os.path.exists(target) else None
        if old != text:
            stale.append(name)
            if not args.check:
                with open(target, "w") as f:
                    f.write(text)
    if args.check and stale:
        print("gen-abi: stale generated tables: " + ", ".join(stale) + " (run compiler/tools/gen-abi.py)")
        sys.exit(1)
    print("gen-abi: %s" % ("up to date" if not stale else "wrote " + ", ".join(stale)))


if __name__ == "__main__":
    main()
