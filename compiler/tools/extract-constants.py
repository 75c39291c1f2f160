#!/usr/bin/env python3
"""Read scpc's uapi constants from each architecture's own headers.

Usage: extract-constants.py [--abi DIR] [--arch ARCH]... [--write | --print | --check]

For each target architecture, the C preprocessor of that architecture (Debian's cross `cpp`
packages, or the machine's own cpp with -m32 / -mx32) reads the headers listed in HEADERS from
that architecture's include tree (Debian's linux-libc-dev-*-cross and libc6-dev-*-cross
packages), with `-dM` for the macros and `-E` for the enums; every name of
abi-sources/constants-names.txt is then evaluated as the C compiler of that architecture would
(a small evaluator of integer constant expressions: literals and their suffixes, casts, the
usual arithmetic conversions, sizeof of the scalar types at the architecture's sizes, character
literals, enumerators).

--write   writes abi-sources/constants-ARCH.tsv (name, value as signed decimal)
--print   prints them
--check   compares them with the committed files; exit 1 naming each difference

A missing header tree or preprocessor is an error naming the Debian package that provides it.
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile

ARCHES = ["x86_64", "x32", "i386", "aarch64", "arm", "riscv64"]

# Only the kernel's headers define the flags (glibc's <fcntl.h> would say O_LARGEFILE is 0 on
# 64-bit architectures, where the kernel's value is what a register carries); glibc's
# <sys/socket.h> gives AF_* and SOCK_*, which the kernel does not export.
# arch -> (preprocessor argv, include tree, Debian packages that provide them)
TOOLS = {
    "x86_64": (["cpp", "-m64"], "/usr/include/x86_64-linux-gnu", "linux-libc-dev libc6-dev cpp"),
    "x32": (["cpp", "-mx32", "-isystem", "/usr/x86_64-linux-gnux32/include"], "/usr/x86_64-linux-gnux32/include",
            "linux-libc-dev-x32-cross libc6-dev-x32-cross cpp"),
    "i386": (["cpp", "-m32", "-isystem", "/usr/i686-linux-gnu/include"], "/usr/i686-linux-gnu/include",
             "linux-libc-dev-i386-cross libc6-dev-i386-cross cpp"),
    "aarch64": (["aarch64-linux-gnu-cpp"], "/usr/aarch64-linux-gnu/include",
                "linux-libc-dev-arm64-cross libc6-dev-arm64-cross cpp-aarch64-linux-gnu"),
    "arm": (["arm-linux-gnueabihf-cpp"], "/usr/arm-linux-gnueabihf/include",
            "linux-libc-dev-armhf-cross libc6-dev-armhf-cross cpp-arm-linux-gnueabihf"),
    "riscv64": (["riscv64-linux-gnu-cpp"], "/usr/riscv64-linux-gnu/include",
                "linux-libc-dev-riscv64-cross libc6-dev-riscv64-cross cpp-riscv64-linux-gnu"),
}

HEADERS = """sys/socket.h linux/prctl.h linux/ptrace.h asm/ptrace.h
linux/audit.h linux/keyctl.h linux/futex.h linux/capability.h linux/mount.h linux/netlink.h
linux/seccomp.h linux/sched.h linux/userfaultfd.h linux/memfd.h linux/fs.h linux/io_uring.h
linux/reboot.h linux/time.h linux/openat2.h linux/eventpoll.h linux/wait.h linux/perf_event.h
linux/random.h linux/close_range.h asm/termbits.h asm/ioctls.h linux/sockios.h asm/resource.h
linux/errno.h asm/signal.h linux/mman.h linux/fcntl.h linux/stat.h linux/personality.h
linux/in.h linux/in6.h""".split()

# sizes in bytes of the scalar types, per data model
ILP32 = {"char": 1, "short": 2, "int": 4, "long": 4, "long long": 8, "pointer": 4}
LP64 = {"char": 1, "short": 2, "int": 4, "long": 8, "long long": 8, "pointer": 8}
MODEL = {"x86_64": LP64, "x32": ILP32, "i386": ILP32, "aarch64": LP64, "arm": ILP32, "riscv64": LP64}
# plain char is unsigned on arm, aarch64 and riscv
CHAR_SIGNED = {"x86_64": True, "x32": True, "i386": True, "aarch64": False, "arm": False, "riscv64": False}


def die(msg):
    sys.stderr.write("extract-constants: " + msg + "\n")
    sys.exit(2)


class Ty:
    """An integer type: its width in bits and signedness."""

    def __init__(self, bits, signed):
        self.bits, self.signed = bits, signed

    def wrap(self, v):
        v &= (1 << self.bits) - 1
        if self.signed and v >> (self.bits - 1):
            v -= 1 << self.bits
        return v


def scalar_types(arch):
    m = MODEL[arch]
    b = lambda n: m[n] * 8
    t = {}
    for sign, signed in (("", True), ("signed ", True), ("unsigned ", False)):
        t[sign + "short"] = t[sign + "short int"] = Ty(b("short"), signed)
        t[sign + "int"] = Ty(b("int"), signed)
        t[sign + "long"] = t[sign + "long int"] = Ty(b("long"), signed)
        t[sign + "long long"] = t[sign + "long long int"] = Ty(b("long long"), signed)
    t["unsigned"] = Ty(32, False)
    t["signed"] = Ty(32, True)
    t["char"] = Ty(8, CHAR_SIGNED[arch])
    t["signed char"] = Ty(8, True)
    t["unsigned char"] = Ty(8, False)
    for n in (8, 16, 32, 64):
        t[f"__u{n}"] = t[f"u{n}"] = t[f"uint{n}_t"] = t[f"__uint{n}_t"] = Ty(n, False)
        t[f"__s{n}"] = t[f"s{n}"] = t[f"int{n}_t"] = t[f"__int{n}_t"] = Ty(n, True)
    t["__le32"] = t["__be32"] = t["__poll_t"] = Ty(32, False)
    t["__le64"] = t["__be64"] = t["__aligned_u64"] = Ty(64, False)
    t["size_t"] = t["__kernel_size_t"] = Ty(b("long"), False)
    t["__kernel_ulong_t"] = Ty(b("long"), False)
    t["__kernel_long_t"] = t["time_t"] = t["__kernel_old_time_t"] = Ty(b("long"), True)  # time_t: the C library's default, long
    t["pid_t"] = t["__kernel_pid_t"] = t["uid_t"] = t["gid_t"] = Ty(32, True)
    t["pointer"] = Ty(m["pointer"] * 8, False)
    return t


TOKEN = re.compile(r"\s*(?:(0[xX][0-9a-fA-F]+|\d+)([uUlL]*)|('(?:\\.|[^'])')|([A-Za-z_]\w*)|(<<|>>|<=|>=|==|!=|&&|\|\||[-+*/%&|^~!()<>?:,\[\]]))")


def tokenize(text):
    pos, out = 0, []
    while pos < len(text):
        m = TOKEN.match(text, pos)
        if not m:
            if text[pos:].strip() == "":
                break
            raise ValueError(f"cannot read {text[pos:pos + 20]!r}")
        pos = m.end()
        if m.group(1):
            out.append(("num", m.group(1), m.group(2).lower()))
        elif m.group(3):
            out.append(("char", m.group(3)))
        elif m.group(4):
            out.append(("id", m.group(4)))
        else:
            out.append(("op", m.group(5)))
    return out


class Eval:
    """C integer constant expressions over one architecture's types."""

    def __init__(self, arch, enums, layouts=None):
        self.types = scalar_types(arch)
        self.int = self.types["int"]
        self.enums = enums
        self.layouts = layouts

    def run(self, text):
        self.toks, self.i = tokenize(text), 0
        v = self.cond()
        if self.i != len(self.toks):
            raise ValueError(f"unexpected {self.toks[self.i]}")
        return v

    def peek(self, *ops):
        return self.i < len(self.toks) and self.toks[self.i][0] == "op" and self.toks[self.i][1] in ops

    def take(self, op):
        if not self.peek(op):
            raise ValueError(f"expected {op!r}")
        self.i += 1

    def arith(self, a, b):
        """The usual arithmetic conversions of two promoted types."""
        a, b = self.promote(a), self.promote(b)
        if a.bits != b.bits:
            return a if a.bits > b.bits else b
        return Ty(a.bits, a.signed and b.signed)

    def promote(self, t):
        return t if t.bits >= 32 else self.int

    def cond(self):
        c = self.binary(0)
        if self.peek("?"):
            self.i += 1
            a = self.cond()
            self.take(":")
            b = self.cond()
            return a if c[0] else b
        return c

    LEVELS = [["||"], ["&&"], ["|"], ["^"], ["&"], ["==", "!="], ["<", ">", "<=", ">="], ["<<", ">>"], ["+", "-"], ["*", "/", "%"]]

    def binary(self, level):
        if level == len(self.LEVELS):
            return self.unary()
        left = self.binary(level + 1)
        while self.peek(*self.LEVELS[level]):
            op = self.toks[self.i][1]
            self.i += 1
            right = self.binary(level + 1)
            left = self.apply(op, left, right)
        return left

    def apply(self, op, a, b):
        (x, tx), (y, ty) = a, b
        if op in ("&&", "||"):
            return (int(bool(x) and bool(y)) if op == "&&" else int(bool(x) or bool(y)), self.int)
        if op in ("<<", ">>"):
            t = self.promote(tx)
            v = x << y if op == "<<" else x >> y
            return (t.wrap(v), t)
        t = self.arith(tx, ty)
        x, y = t.wrap(x), t.wrap(y)
        if op in ("==", "!=", "<", ">", "<=", ">="):
            return (int({"==": x == y, "!=": x != y, "<": x < y, ">": x > y, "<=": x <= y, ">=": x >= y}[op]), self.int)
        if op in ("/", "%") and y == 0:
            raise ValueError("division by zero")
        v = {"|": x | y, "^": x ^ y, "&": x & y, "+": x + y, "-": x - y, "*": x * y,
             "/": int(x / y) if y else 0, "%": x - int(x / y) * y if y else 0}[op]
        return (t.wrap(v), t)

    def type_name(self):
        """A type name at the cursor, or None (the cursor is left where it was)."""
        j, words = self.i, []
        while j < len(self.toks) and self.toks[j][0] == "id" and self.toks[j][1] in (
                "unsigned", "signed", "int", "long", "short", "char", "const", "volatile", "struct") or (
                j < len(self.toks) and self.toks[j][0] == "id" and not words and self.toks[j][1] in self.types):
            words.append(self.toks[j][1])
            j += 1
            if words[-1] in self.types and words[-1] not in ("unsigned", "signed", "long", "short", "int", "char"):
                break
        words = [w for w in words if w not in ("const", "volatile")]
        if not words:
            return None
        pointer = False
        while j < len(self.toks) and self.toks[j] == ("op", "*"):
            pointer, j = True, j + 1
        name = " ".join(words)
        if words[0] == "struct":
            if j >= len(self.toks) or self.toks[j][0] != "id" or self.layouts is None:
                return None
            size = self.types["pointer"].bits // 8 if self.peek_at(j + 1, "*") else self.layouts.size(self.toks[j][1])
            self.i = j + 1
            while self.peek("*"):
                self.i += 1
            return Ty(size * 8, False)
        t = self.types["pointer"] if pointer else self.types.get(name)
        if t is None:
            return None
        self.i = j
        # an array type: `char[256]`
        while self.peek("["):
            self.i += 1
            n = self.cond()[0]
            self.take("]")
            t = Ty(t.bits * n, False)
        return t

    def peek_at(self, j, op):
        return j < len(self.toks) and self.toks[j] == ("op", op)

    def unary(self):
        if self.peek("-", "+", "~", "!"):
            op = self.toks[self.i][1]
            self.i += 1
            v, t = self.unary()
            t = self.promote(t)
            if op == "-":
                return (t.wrap(-v), t)
            if op == "~":
                return (t.wrap(~v), t)
            if op == "!":
                return (int(not v), self.int)
            return (v, t)
        if self.peek("("):
            save = self.i
            self.i += 1
            t = self.type_name()
            if t is not None and self.peek(")"):
                self.i += 1
                v, _ = self.unary()
                return (t.wrap(v), t)
            self.i = save + 1
            v = self.cond()
            self.take(")")
            return v
        tok = self.toks[self.i]
        self.i += 1
        if tok[0] == "num":
            return self.number(tok[1], tok[2])
        if tok[0] == "char":
            body = tok[1][1:-1]
            c = {"\\n": 10, "\\t": 9, "\\0": 0, "\\\\": 92, "\\'": 39}.get(body, ord(body[-1]) if body else 0)
            return (c, self.int)
        if tok[0] == "id" and tok[1] == "sizeof":
            self.take("(")
            t = self.type_name()
            if t is None:
                raise ValueError("sizeof of an unknown type")
            self.take(")")
            return (t.bits // 8, self.types["size_t"])
        if tok[0] == "id" and tok[1] in self.enums:
            return (self.enums[tok[1]], self.int)
        raise ValueError(f"unknown name {tok[1] if len(tok) > 1 else tok}")

    def number(self, text, suffix):
        v = int(text, 0) if not (len(text) > 1 and text[0] == "0" and text[1] not in "xX") else int(text, 8)
        unsigned, longs = "u" in suffix, suffix.count("l")
        decimal = not text.lower().startswith("0")
        candidates = [["int", "long", "long long"], ["long", "long long"], ["long long"]][min(longs, 2)]
        for base in candidates:
            for u in ([True] if unsigned else ([False] if decimal else [False, True])):
                t = self.types[("unsigned " if u else "") + base]
                if v < (1 << (t.bits - (0 if u else 1))):
                    return (v, t)
        return (v, self.types["unsigned long long"])


class Layouts:
    """Sizes of the structs the headers define, laid out by the architecture's C ABI: each
    member at the next multiple of its alignment, the whole padded to the largest alignment
    (i386 aligns 64-bit scalars to 4 inside structs unless declared __aligned_u64)."""

    def __init__(self, arch, code):
        self.arch, self.code = arch, code
        self.types = scalar_types(arch)
        self.cache = {}

    def body(self, kind, name):
        m = re.search(r"\b" + kind + r"\s+" + re.escape(name) + r"\s*\{", self.code)
        if not m:
            raise ValueError(f"{kind} {name} is not defined")
        return self.braced(m.end())

    def braced(self, start):
        depth, i = 1, start
        while depth:
            depth += {"{": 1, "}": -1}.get(self.code[i], 0)
            i += 1
        return self.code[start:i - 1]

    def size(self, name):
        return self.layout("struct", name)[0]

    def layout(self, kind, name=None, body=None):
        key = (kind, name)
        if name is not None and key in self.cache:
            return self.cache[key]
        body = self.body(kind, name) if body is None else body
        body = re.sub(r"__attribute__\s*\(\((?:[^()]|\([^()]*\))*\)\)", "", body)
        size, align = 0, 1
        for member in self.members(body):
            msize, malign = self.member(member)
            if kind == "union":
                size = max(size, msize)
            else:
                size = (size + malign - 1) // malign * malign + msize
            align = max(align, malign)
        size = (size + align - 1) // align * align
        if name is not None:
            self.cache[key] = (size, align)
        return size, align

    def members(self, body):
        out, depth, cur = [], 0, ""
        for c in body:
            depth += {"{": 1, "}": -1}.get(c, 0)
            if c == ";" and depth == 0:
                out.append(cur.strip())
                cur = ""
            else:
                cur += c
        return [m for m in out if m]

    def member(self, text):
        m = re.fullmatch(r"(struct|union)\s*(\w*)\s*\{(.*)\}\s*(\w*)\s*((?:\[[^\]]*\]\s*)*)", text, re.S)
        if m:
            size, align = self.layout(m.group(1), None, m.group(3))
            return size * self.count(m.group(5)), align
        m = re.fullmatch(r"(.*?)\s*(\**)\s*(\w+)\s*((?:\[[^\]]*\]\s*)*)", text, re.S)
        if not m or ":" in text:
            raise ValueError(f"cannot lay out member {text!r}")
        base = " ".join(w for w in m.group(1).split() if w not in ("const", "volatile"))
        if m.group(2):
            size = align = self.types["pointer"].bits // 8
        elif base.startswith("struct ") or base.startswith("union "):
            size, align = self.layout(base.split()[0], base.split()[1])
        else:
            t = self.types.get(base)
            if t is None:
                raise ValueError(f"unknown member type {base!r}")
            size = align = t.bits // 8
            if self.arch == "i386" and size == 8 and base != "__aligned_u64":
                align = 4
        return size * self.count(m.group(4)), align

    def count(self, dims):
        n = 1
        for d in re.findall(r"\[([^\]]*)\]", dims):
            n *= Eval(self.arch, {}).run(d)[0] if d.strip() else 0
        return n


def preprocess(arch, flag, text):
    argv, tree, packages = TOOLS[arch]
    if shutil.which(argv[0]) is None:
        die(f"{arch}: `{argv[0]}` not found: install {packages}")
    if not os.path.isdir(tree):
        die(f"{arch}: {tree} not found: install {packages}")
    with tempfile.NamedTemporaryFile("w", suffix=".h", delete=False) as f:
        f.write(text)
        name = f.name
    try:
        r = subprocess.run(argv + [flag, "-P", name], capture_output=True, text=True)
    finally:
        os.unlink(name)
    if r.returncode != 0:
        die(f"{arch}: {' '.join(argv)} failed (install {packages}):\n{r.stderr[:2000]}")
    return r.stdout


def enums_of(code):
    """name -> value of every enumerator whose value is a plain number or follows one."""
    out = {}
    for body in re.findall(r"\benum\b[^{;]*\{([^}]*)\}", code):
        nxt = 0
        for item in body.split(","):
            item = item.strip()
            if not item:
                continue
            m = re.fullmatch(r"([A-Za-z_]\w*)\s*(?:=\s*(.+))?", item, re.S)
            if not m:
                break
            if m.group(2) is not None:
                try:
                    nxt = Eval("x86_64", out).run(m.group(2))[0]
                except ValueError:
                    break
            out[m.group(1)] = nxt
            nxt += 1
    return out


def extract(arch, names):
    includes = "#define _GNU_SOURCE 1\n" + "".join(f"#include <{h}>\n" for h in HEADERS)
    # arch_prctl's codes exist only where the header does (x86)
    includes += "#if __has_include(<asm/prctl.h>)\n#include <asm/prctl.h>\n#endif\n"
    macros = preprocess(arch, "-dM", includes)
    defined = {m.group(1) for m in re.finditer(r"^#define ([A-Za-z_]\w*)", macros, re.M)}
    code = preprocess(arch, "-E", includes)
    enums = enums_of(code)
    probe = includes + "".join(f"scpc_value_{n} = {n} ;\n" for n in names)
    expanded = preprocess(arch, "-E", probe)
    ev = Eval(arch, enums, Layouts(arch, code))
    values, problems = {}, []
    for m in re.finditer(r"^scpc_value_(\w+) = (.*) ;$", expanded, re.M):
        name, expr = m.group(1), m.group(2).strip()
        if expr == name and name not in enums and name not in defined:
            continue  # not defined on this architecture
        try:
            values[name] = ev.run(expr)[0]
        except ValueError as e:
            problems.append(f"{arch}: {name} = {expr}: {e}")
    if problems:
        die("cannot evaluate:\n  " + "\n  ".join(problems))
    return values


def tsv_path(abi, arch):
    return os.path.join(abi, f"constants-{arch}.tsv")


def render(arch, values):
    argv, tree, packages = TOOLS[arch]
    lines = [f"# uapi constants of {arch}: `{' '.join(argv)}` over {tree} (Debian: {packages}), as",
             "# compiler/tools/extract-constants.py evaluates them; do not edit, run it with --write.",
             "name\tvalue"]
    # as 64-bit patterns in signed decimal (what the tables hold)
    lines += [f"{k}\t{v - (1 << 64) if v >= 1 << 63 else v}" for k, v in sorted(values.items())]
    return "\n".join(lines) + "\n"


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser()
    ap.add_argument("--abi", default=os.path.join(here, "../abi-sources"))
    ap.add_argument("--arch", action="append", choices=ARCHES)
    mode = ap.add_mutually_exclusive_group(required=True)
    mode.add_argument("--write", action="store_true")
    mode.add_argument("--print", action="store_true")
    mode.add_argument("--check", action="store_true")
    args = ap.parse_args()
    with open(os.path.join(args.abi, "constants-names.txt")) as f:
        names = [l.strip() for l in f if l.strip() and not l.startswith("#")]
    stale = []
    for arch in args.arch or ARCHES:
        text = render(arch, extract(arch, names))
        path = tsv_path(args.abi, arch)
        if args.print:
            sys.stdout.write(text)
        elif args.write:
            with open(path, "w") as f:
                f.write(text)
        else:
            old = open(path).read() if os.path.exists(path) else ""
            if old != text:
                want = dict(l.split("\t") for l in text.splitlines()[3:])
                have = dict(l.split("\t") for l in old.splitlines()[3:]) if old else {}
                for k in sorted(set(want) | set(have)):
                    if want.get(k) != have.get(k):
                        stale.append(f"{arch}: {k}: headers say {want.get(k, 'undefined')}, {os.path.basename(path)} says {have.get(k, 'nothing')}")
    if stale:
        print("\n".join(stale))
        sys.exit(1)


if __name__ == "__main__":
    main()
