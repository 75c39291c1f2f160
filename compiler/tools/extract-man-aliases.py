#!/usr/bin/env python3
"""Read the parameter names of the Linux manual pages (section 2) and pair them with the kernel's.

Usage: extract-man-aliases.py [--man DIR] [--abi DIR] [--write | --print | --check]

Policy authors write the names the manual pages use (`socket(domain, type, protocol)`), while
scpc's ABI tables carry the kernel's (`socket(family, type, protocol)`). This tool reads the
SYNOPSIS of every page of section 2 (Debian's `manpages-dev`, the Linux man-pages project),
takes each prototype of a function that is also a syscall of the tables (and each
`syscall(SYS_name, ...)` form), and, where the prototype has as many parameters as the kernel's
signature and the same pointer-ness at each place, pairs the names by position. A man-page name
that differs from the kernel's at the same place becomes an alias, unless it is the kernel's name
of another parameter of that syscall, or an `argN` (which always names register N).

The rows of MANUAL are added as they are: forms the SYNOPSIS does not show (the raw `clone`
interface, which clone(2) documents under NOTES); the pairs of EXCLUDE, which the positions get
wrong (a wrapper's parameter that the syscall does not have), are left out.

--write   writes abi-sources/param-aliases.tsv
--print   prints it
--check   compares it with the committed file; exit 1 if it differs
"""
import argparse
import gzip
import os
import re
import sys

# (syscall, man-page name, kernel name, where the manual says it): forms the SYNOPSIS lacks
MANUAL = [
    ("clone", "flags", "clone_flags", "clone(2), NOTES: the raw system call interface"),
    ("clone", "stack", "newsp", "clone(2), NOTES: the raw system call interface"),
    ("clone", "parent_tid", "parent_tidptr", "clone(2), NOTES: the raw system call interface"),
    ("clone", "child_tid", "child_tidptr", "clone(2), NOTES: the raw system call interface"),
    ("unshare", "flags", "unshare_flags", "unshare(2), SYNOPSIS"),
    ("ioctl", "request", "cmd", "ioctl(2), SYNOPSIS (variadic, so not paired by position)"),
]

# (syscall, man-page name): pairs the positions get wrong, left out
EXCLUDE = {
    # signalfd(3)'s wrapper calls signalfd4; the syscall's third parameter is the mask's size
    ("signalfd", "flags"),
    # the page's cacheflush takes a length; the kernel's (arm, m68k...) an end address
    ("cacheflush", "nbytes"),
}


def die(msg):
    sys.stderr.write("extract-man-aliases: " + msg + "\n")
    sys.exit(2)


def kernel_signatures(abi_dir):
    """syscall -> list of (name, is_pointer) from the first table that has a signature."""
    sigs = {}
    for arch in ["x86_64", "aarch64", "riscv64", "x32", "i386", "arm"]:
        with open(os.path.join(abi_dir, arch + ".tsv")) as f:
            for line in f.read().splitlines()[2:]:
                cols = line.split("\t")
                name, sig = cols[1], cols[3]
                if name in sigs or not sig:
                    continue
                params = []
                for item in sig.split(";"):
                    m = re.fullmatch(r"(.*?)\s*\b([A-Za-z_][A-Za-z0-9_]*)", item.strip())
                    if m:
                        ctype = m.group(1)
                        # an address passed as an integer matches a man page's pointer
                        pointer = None if ctype.strip() in ("unsigned long", "long") else "*" in ctype
                        params.append((m.group(2), pointer))
                sigs[name] = params
    return sigs


def roff_text(line):
    """The text of one roff line of a SYNOPSIS (font macros and escapes dropped)."""
    if line.startswith(".B") or line.startswith(".I") or line.startswith(".R"):
        macro, _, rest = line.partition(" ")
        # alternating-font macros: the arguments are words or quoted strings, joined as written
        parts = re.findall(r'"((?:[^"\\]|\\.)*)"|(\S+)', rest)
        text = "".join(q if q else w for q, w in parts) if macro[2:] else rest
        if macro in (".B", ".I"):
            text = rest.strip('"')
        line = text
    elif line.startswith("."):
        return ""
    line = re.sub(r"\\f[BIRP]", "", line)
    line = line.replace("\\-", "-").replace("\\ ", " ").replace('\\"', '"')
    return line


def prototypes(text):
    """(function, [(param name, is pointer)]) of every prototype in a SYNOPSIS."""
    m = re.search(r"^\.SH SYNOPSIS\n(.*?)^\.SH ", text, re.S | re.M)
    if not m:
        return []
    out = []
    joined = ""
    for line in m.group(1).splitlines():
        t = roff_text(line)
        if t.endswith("\\"):
            joined += t[:-1] + " "
            continue
        joined += t + "\n"
    joined = re.sub(r"/\*.*?\*/", " ", joined, flags=re.S)
    for fm in re.finditer(r"\b([A-Za-z_][A-Za-z0-9_]*)\s*\(([^;{}]*?)\)\s*;", joined):
        func, args = fm.group(1), fm.group(2)
        args = re.sub(r"\[[^\]]*\]", "[]", args)  # `void buf[.count]`
        items = [a.strip() for a in split_top(args)]
        if func == "syscall":
            if not items or not items[0].startswith("SYS_"):
                continue
            func, items = items[0][4:], items[1:]
        if items == ["void"] or items == [""]:
            items = []
        if any(i == "..." or i.endswith("...") for i in items):
            continue
        params = []
        for item in items:
            pm = re.search(r"\(\s*\*\s*([A-Za-z_]\w*)\s*\)", item)  # a function pointer
            name = pm.group(1) if pm else None
            if not name:
                words = re.findall(r"[A-Za-z_]\w*", item.replace("_Nullable", "").replace("_Nonnull", ""))
                name = words[-1] if words else None
            if not name:
                break
            params.append((name, "*" in item or "[]" in item))
        else:
            out.append((func, params))
    return out


def named(text):
    """The functions a page documents: the names before `\\-` in its NAME section."""
    m = re.search(r"^\.SH NAME\n(.*?)\\-", text, re.S | re.M)
    if not m:
        return set()
    return set(re.findall(r"[A-Za-z_]\w*", re.sub(r"\\f[BIRP]", "", m.group(1))))


def split_top(s):
    out, depth, cur = [], 0, ""
    for c in s:
        if c in "([":
            depth += 1
        elif c in ")]":
            depth -= 1
        if c == "," and depth == 0:
            out.append(cur)
            cur = ""
        else:
            cur += c
    out.append(cur)
    return out


def aliases(man_dir, abi_dir):
    sigs = kernel_signatures(abi_dir)
    rows = {}
    for page in sorted(os.listdir(man_dir)):
        if not page.endswith(".2.gz"):
            continue
        with gzip.open(os.path.join(man_dir, page), "rt", errors="replace") as f:
            text = f.read()
        if text.startswith(".so "):
            continue  # a page that is another page
        page_name = page[: -len(".2.gz")]
        where = page_name + "(2), SYNOPSIS"
        documented = named(text)
        for func, params in prototypes(text):
            kernel = sigs.get(func)
            if func not in documented:
                continue  # an example of another call (ioctl_fat(2) shows ioctl with FAT_* requests)
            if kernel is None or len(kernel) != len(params):
                continue
            if any(kp is not None and kp != mp for (_, kp), (_, mp) in zip(kernel, params)):
                continue  # not the same shape: a wrapper, not the syscall
            knames = {k for k, _ in kernel}
            for (kname, _), (mname, _) in zip(kernel, params):
                if mname == kname or mname in knames or re.fullmatch(r"arg\d+", mname) or (func, mname) in EXCLUDE:
                    continue
                key = (func, mname)
                if key in rows and rows[key][0] != kname:
                    rows[key] = (None, where)  # two pages disagree: no alias
                elif key not in rows or page_name == func:
                    rows[key] = (kname, where)  # the function's own page is the source
    for func, mname, kname, where in MANUAL:
        rows[(func, mname)] = (kname, where)
    return sorted((f, m, k, w) for (f, m), (k, w) in rows.items() if k)


def render(rows):
    lines = [
        "# Parameter names of the Linux manual pages (section 2) that differ from the kernel's: a policy",
        "# may write either (`socket if domain == AF_INET` is `family`). Written by",
        "# compiler/tools/extract-man-aliases.py from Debian's manpages-dev (the Linux man-pages project);",
        "# `source` names the page. Do not edit: change the tool's MANUAL rows and run it with --write.",
        "syscall\talias\tkernel\tsource",
    ]
    lines += ["\t".join(r) for r in rows]
    return "\n".join(lines) + "\n"


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser()
    ap.add_argument("--man", default="/usr/share/man/man2")
    ap.add_argument("--abi", default=os.path.join(here, "../abi-sources"))
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--write", action="store_true")
    mode.add_argument("--print", action="store_true")
    mode.add_argument("--check", action="store_true")
    args = ap.parse_args()
    if not os.path.isdir(args.man):
        die(f"no manual pages at {args.man} (Debian: apt-get install manpages-dev)")
    text = render(aliases(args.man, args.abi))
    path = os.path.join(args.abi, "param-aliases.tsv")
    if args.write:
        with open(path, "w") as f:
            f.write(text)
        print("extract-man-aliases: wrote " + path)
    elif args.check:
        old = open(path).read() if os.path.exists(path) else ""
        if old != text:
            print("extract-man-aliases: param-aliases.tsv differs from the manual pages (run with --write)")
            sys.exit(1)
        print("extract-man-aliases: up to date")
    else:
        sys.stdout.write(text)


if __name__ == "__main__":
    main()
