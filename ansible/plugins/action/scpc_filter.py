# Copyright scpc authors. Apache-2.0, like the rest of the repository.
"""scpc.fleet.scpc_filter: installs, rolls back or reads a compiled seccomp filter on a host
through the host's node program (`scpc-node serve`), the way `scpc deploy` does.

It runs on the controller and uses only the connection's raw command execution: no Python,
no module upload and no temporary directory on the host (dropbear and busybox nodes have
none of them). Per task it sends, like the deployer:

1. one probe (plain POSIX sh, nothing read from the task in it but the node program's path):
   `uname -m`, `uname -r`, the ELF header of `/bin/sh` (which node program runs there), the
   sha256 of the node program at its path, and when that is one of the programs of
   `node_programs`, runs it at once on a `read` request (on standard input);
2. when the host lacks that node program (or has another one): the program on standard
   input, written beside its path, its sha256 checked on the host, renamed into place, then
   the `read` request (not in check mode);
3. the `install` or `rollback` request, when one is needed.

The node program does the work and keeps the guarantees (sha256 verified, atomic rename,
per-path lock, kept versions, reload and health check, its own rollback on a failed check).
The protocol is deploy/node/src/protocol.rs; docs/deploy.md shows every message.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import hashlib
import json
import os
import re
import shlex

from ansible.errors import AnsibleActionFail, AnsibleConnectionFailure
from ansible.plugins.action import ActionBase

PROTOCOL = 1
NEXT = "--scpc-next--"
NODE_ARCHES = ("x86_64", "aarch64", "arm", "i386", "riscv64")
DEFAULT_NODE_PROGRAM = "/var/lib/scpc/scpc-node"

ARGUMENT_SPEC = dict(
    service=dict(type="str", required=True),
    path=dict(type="str", required=True),
    state=dict(type="str", default="present", choices=["present", "rolled_back", "status"]),
    policy=dict(type="str"),
    artifacts=dict(type="path"),
    node_programs=dict(type="path"),
    node_program=dict(type="str", default=DEFAULT_NODE_PROGRAM),
    kind=dict(type="str", default="command", choices=["command", "systemd"]),
    unit=dict(type="str"),
    reload=dict(type="str"),
    health=dict(type="str"),
    pid_file=dict(type="str"),
    process=dict(type="str"),
    keep=dict(type="int", default=3),
    timeout=dict(type="int", default=30),
    force=dict(type="bool", default=False),
    operator=dict(type="str", default="ansible"),
)

REQUIRED_IF = [
    ("state", "present", ("policy", "artifacts")),
    ("state", "status", ("policy", "artifacts")),
]

# a path scpc puts into a shell command: absolute, plain characters, no `..`
PLAIN_PATH = re.compile(r"^/[A-Za-z0-9._/-]*$")
POLICY_NAME = re.compile(r"^[A-Za-z0-9_]+$")


def arch_of_uname(machine):
    """scpc's architecture for a `uname -m` answer (deploy/src/artifacts.rs)."""
    m = machine.strip()
    if m in ("x86_64", "amd64"):
        return "x86_64"
    if m in ("aarch64", "arm64", "aarch64_be"):
        return "aarch64"
    if m.startswith("armv") or m == "arm":
        return "arm"
    if m in ("i386", "i486", "i586", "i686"):
        return "i386"
    if m == "riscv64":
        return "riscv64"
    return None


def arch_of_elf(header):
    """The architecture of a program from the first 20 bytes of its ELF header."""
    if len(header) < 20 or header[:4] != b"\x7fELF" or header[5] != 1:
        return None
    machine = header[18] | header[19] << 8
    return {
        (2, 0x3E): "x86_64",
        (1, 0x03): "i386",
        (2, 0xB7): "aarch64",
        (1, 0x28): "arm",
        (2, 0xF3): "riscv64",
    }.get((header[4], machine))


def sha256_hex(data):
    return hashlib.sha256(data).hexdigest()


def describe(sha, size):
    """A filter as the diff shows it."""
    if sha is None:
        return "(no file)\n"
    if size is None:
        return "sha256: %s\n" % sha
    return "sha256: %s\nsize: %d bytes (%d instructions)\n" % (sha, size, size // 8)


class ActionModule(ActionBase):
    """See the module documentation (plugins/modules/scpc_filter.py)."""

    TRANSFERS_FILES = False
    _supports_check_mode = True
    _supports_async = False

    # -- the controller's files -------------------------------------------------------------

    def _node_programs(self, directory):
        """{arch: (bytes, sha256)} of DIRECTORY/ARCH/scpc-node (at least one)."""
        programs = {}
        for arch in NODE_ARCHES:
            path = os.path.join(directory, arch, "scpc-node")
            try:
                with open(path, "rb") as f:
                    data = f.read()
            except FileNotFoundError:
                continue
            except OSError as e:
                raise AnsibleActionFail("cannot read the node program %s: %s" % (path, e))
            programs[arch] = (data, sha256_hex(data))
        if not programs:
            raise AnsibleActionFail(
                "no node programs in %s: none of %s holds scpc-node (deploy/node/build.sh DIR builds them)"
                % (directory, ", ".join(NODE_ARCHES))
            )
        return programs

    def _build(self, directory, policy, arch):
        """The manifest's record and the filter for ARCH, checked against the manifest."""
        mpath = os.path.join(directory, "%s.manifest.json" % policy)
        try:
            with open(mpath, "rb") as f:
                text = f.read()
            manifest = json.loads(text)
        except (OSError, ValueError) as e:
            raise AnsibleActionFail("cannot read the manifest %s (scpc build writes it): %s" % (mpath, e))
        if not isinstance(manifest, dict) or manifest.get("policy") != policy:
            raise AnsibleActionFail("%s is not the manifest of policy `%s`" % (mpath, policy))
        targets = [t for t in manifest.get("targets", []) if isinstance(t, dict)]
        target = next((t for t in targets if t.get("arch") == arch), None)
        if target is None:
            raise AnsibleActionFail(
                "policy `%s` has no artifact for %s (built for %s); nothing was installed on this host"
                % (policy, arch, ", ".join(str(t.get("arch")) for t in targets))
            )
        fpath = os.path.join(directory, str(target.get("file", "")))
        if os.path.basename(fpath) != "%s.%s.bpf" % (policy, arch):
            raise AnsibleActionFail("%s names the filter `%s`, not %s.%s.bpf" % (mpath, target.get("file"), policy, arch))
        try:
            with open(fpath, "rb") as f:
                data = f.read()
        except OSError as e:
            raise AnsibleActionFail("cannot read the filter %s: %s" % (fpath, e))
        sha = sha256_hex(data)
        if sha != target.get("sha256"):
            raise AnsibleActionFail(
                "%s has sha256 %s, but the manifest says %s: rebuild before deploying" % (fpath, sha, target.get("sha256"))
            )
        return {
            "arch": arch,
            "file": fpath,
            "bytes": data,
            "sha256": sha,
            "manifest_sha256": sha256_hex(text),
            "compiler": str(manifest.get("compiler", "")),
        }

    # -- the host ---------------------------------------------------------------------------

    def _sh(self, script, stdin):
        """Runs SCRIPT with the host's /bin/sh (through become when the play asks), STDIN on its
        standard input. Ansible appends `&& sleep 0` to the command: the braces keep a
        multi-line script one command."""
        return self._low_level_execute_command("{\n%s\n}" % script, in_data=stdin)

    def _answer(self, res, what):
        """The node program's response to a request, or the task fails."""
        out = res.get("stdout", "").strip()
        try:
            response = json.loads(out)
        except ValueError:
            said = res.get("stderr", "").strip().splitlines()
            raise AnsibleActionFail(
                "the node program gave no answer to the %s request (exit %s)%s"
                % (what, res.get("rc"), (": " + said[-1][:300]) if said else "")
            )
        if not isinstance(response, dict) or response.get("protocol") != PROTOCOL:
            raise AnsibleActionFail("the node program does not speak protocol %d" % PROTOCOL)
        if not response.get("ok"):
            e = response.get("error") or {}
            raise AnsibleActionFail("%s [%s]" % (e.get("message", "no reason given"), e.get("code", "?")))
        return response

    def _probe(self, node, programs, read):
        ours = "|".join(sha for (_, sha) in programs.values())
        q = shlex.quote(node)
        script = (
            "uname -m; uname -r\necho %(n)s\nod -An -tx1 -N20 /bin/sh\necho %(n)s\n"
            "if [ -f %(q)s ]; then s=$(sha256sum %(q)s); s=${s%%%% *}; echo \"$s\"; "
            "case \"$s\" in %(ours)s) echo %(n)s; exec %(q)s serve;; esac; fi"
        ) % {"n": NEXT, "q": q, "ours": ours}
        res = self._sh(script, json.dumps(read).encode())
        parts = res.get("stdout", "").replace("\r", "").split(NEXT, 3)
        if len(parts) < 3:
            raise AnsibleActionFail("the probe failed (exit %s): %s" % (res.get("rc"), res.get("stderr", "").strip()[-300:]))
        uname = parts[0].strip().splitlines()
        machine = uname[0].strip() if uname else ""
        kernel = uname[1].strip() if len(uname) > 1 else ""
        try:
            header = bytes(int(h, 16) for h in parts[1].split())
        except ValueError:
            header = b""
        installed = parts[2].strip() or None
        # a program with one of our digests that gives no answer (another architecture's, which
        # cannot run here) is replaced like a foreign one; an answer that refuses fails the task
        answer = None
        if len(parts) == 4:
            try:
                json.loads(parts[3].strip())
            except ValueError:
                pass
            else:
                answer = self._answer({"stdout": parts[3], "stderr": res.get("stderr", ""), "rc": res.get("rc")}, "read")
        return {
            "machine": machine,
            "kernel": kernel,
            "arch": arch_of_uname(machine),
            "program_arch": arch_of_elf(header),
            "installed": installed,
            "answer": answer,
        }

    def _bring(self, node, data, sha, read):
        """Writes the node program beside NODE (sha256 checked on the host, made executable,
        flushed, renamed into place) and runs it on READ."""
        directory = os.path.dirname(node) or "/"
        q, d = shlex.quote(node), shlex.quote(directory)
        script = (
            "set -e\n"
            "mkdir -p -m 755 %(d)s\n"
            "if [ \"$(stat -c %%u %(d)s)\" != \"$(id -u)\" ]; then echo '%(dir)s is not owned by this user: the node program is not put there' >&2; exit 3; fi\n"
            "case \"$(stat -c %%A %(d)s)\" in ?????w????|????????w?) echo 'others may write to %(dir)s: the node program is not put there' >&2; exit 3;; esac\n"
            "t=%(d)s/.scpc-node.tmp.$$\n"
            "cat > \"$t\"\n"
            "got=$(sha256sum \"$t\"); got=${got%%%% *}\n"
            "if [ \"$got\" != %(sha)s ]; then rm -f \"$t\"; echo \"the uploaded node program has sha256 $got, not %(sha)s\" >&2; exit 3; fi\n"
            "chmod 755 \"$t\"\n"
            "sync \"$t\" 2>/dev/null || sync\n"
            "mv -f \"$t\" %(q)s\n"
            "sync %(d)s 2>/dev/null || sync"
        ) % {"d": d, "dir": directory, "q": q, "sha": sha}
        res = self._sh(script, data)
        if res.get("rc") != 0:
            raise AnsibleActionFail(
                "bringing the node program to %s failed (exit %s): %s" % (node, res.get("rc"), res.get("stderr", "").strip()[-300:])
            )
        return self._call(node, read, "read")

    def _call(self, node, request, what):
        res = self._sh("exec %s serve" % shlex.quote(node), json.dumps(request).encode())
        return self._answer(res, what)

    # -- the task ---------------------------------------------------------------------------

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        del tmp
        _, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC, required_if=REQUIRED_IF)
        state = args["state"]
        node = args["node_program"]
        if not PLAIN_PATH.match(node) or "/../" in node + "/" or node.endswith("/"):
            raise AnsibleActionFail("node_program `%s` is not an absolute path of letters, digits and ._-/" % node)
        if args["policy"] is not None and not POLICY_NAME.match(args["policy"]):
            raise AnsibleActionFail("`%s` is not a policy name" % args["policy"])
        directory = args["node_programs"] or os.environ.get("SCPC_NODE_PROGRAMS")
        if not directory:
            raise AnsibleActionFail("node_programs is not given (nor SCPC_NODE_PROGRAMS): deploy/node/build.sh DIR builds them")
        programs = self._node_programs(directory)
        check = bool(self._task.check_mode)

        service = {"name": args["service"], "path": args["path"], "kind": args["kind"]}
        for key in ("unit", "reload", "health", "pid_file", "process"):
            if args[key] is not None:
                service[key] = args[key]
        timeout = args["timeout"]
        read = {
            "protocol": PROTOCOL,
            "job": "read",
            "services": [service],
            "fetch": bool(state == "present" and self._task.diff),
            "enforcement": state == "status",
            "timeout": timeout,
        }

        probe = self._probe(node, programs, read)
        result.update(machine=probe["machine"], kernel=probe["kernel"], arch=probe["arch"], changed=False)
        if probe["program_arch"] is None:
            raise AnsibleActionFail(
                "cannot tell the architecture of this host's programs (/bin/sh is not an ELF program scpc knows); nothing was installed"
            )
        if probe["program_arch"] not in programs:
            raise AnsibleActionFail(
                "no node program for %s in %s (deploy/node/build.sh builds them); nothing was installed" % (probe["program_arch"], directory)
            )
        data, expected = programs[probe["program_arch"]]
        answer = probe["answer"]
        if answer is not None and (probe["installed"] != expected or answer.get("node", {}).get("arch") != probe["program_arch"]):
            answer = None
        result["node_program"] = "present"
        if answer is None:
            if check:
                result["node_program"] = "would be brought"
            else:
                answer = self._bring(node, data, expected, read)
                result["node_program"] = "brought"
                result["changed"] = True

        reading = None
        if answer is not None:
            services = (answer.get("result") or {}).get("services") or []
            if len(services) != 1:
                raise AnsibleActionFail("the node program answered another job")
            reading = services[0]
            if "error" in reading:
                e = reading["error"]
                raise AnsibleActionFail("%s: %s [%s]" % (args["path"], e.get("message"), e.get("code")))
            reading["holding"] = reading.get("holding") or {}

        if state == "status":
            return self._status(result, args, probe, reading)
        if state == "rolled_back":
            return self._rollback(result, args, service, reading, check, node)
        return self._present(result, args, probe, service, reading, check, node)

    def _present(self, result, args, probe, service, reading, check, node):
        if probe["arch"] is None:
            raise AnsibleActionFail("unknown architecture `%s` (uname -m); nothing was installed" % probe["machine"])
        build = self._build(args["artifacts"], args["policy"], probe["arch"])
        new = build["sha256"]
        holding = reading["holding"] if reading is not None else None
        actual = holding.get("actual") if holding else None
        history = holding.get("history") or [] if holding else []
        recorded = history[0].get("sha256") if history else None
        result.update(sha256=new, artifact=build["file"])
        if holding is not None and actual == new and recorded == new:
            return self._finish(result, "unchanged", actual, new)
        if check:
            result["changed"] = True
            if self._task.diff:
                result["diff"] = diff(args["path"], reading, actual, build)
            return self._finish(result, "would-install", actual, new)
        request = {
            "protocol": PROTOCOL,
            "job": "install",
            "service": service,
            "filter": {"arch": build["arch"], "sha256": new, "bytes": base64.b64encode(build["bytes"]).decode()},
            "record": {
                "policy": args["policy"],
                "manifest_sha256": build["manifest_sha256"],
                "compiler": build["compiler"],
                "operator": args["operator"],
            },
            "keep": args["keep"],
            "force": args["force"],
            "timeout": args["timeout"],
        }
        try:
            outcome = self._call(node, request, "install").get("result") or {}
        except AnsibleConnectionFailure as e:
            return self._recover(result, args, service, node, new, e)
        change = outcome.get("result")
        if change == "installed" and outcome.get("now") == new:
            result["changed"] = True
            if self._task.diff:
                result["diff"] = diff(args["path"], reading, outcome.get("from"), build)
            return self._finish(result, "installed", outcome.get("from"), new)
        if change == "unchanged":
            return self._finish(result, "unchanged", new, new)
        if change == "installed":
            result.update(failed=True, msg="the node says installed, but the path holds %s" % (outcome.get("now") or "nothing"))
            return self._finish(result, "failed", outcome.get("from"), outcome.get("now"))
        result.update(failed=True, failure=outcome.get("failure"), undo_failure=outcome.get("undo_failure"))
        result["msg"] = "%s; rolled back: the path holds %s" % (step_text(outcome.get("failure")), outcome.get("now") or "no filter")
        if outcome.get("undo_failure"):
            result["msg"] += "; undoing it, " + step_text(outcome.get("undo_failure"))
        return self._finish(result, "rolled-back", outcome.get("from"), outcome.get("now"))

    def _recover(self, result, args, service, node, new, error):
        """The session died during an install (the node program finishes its job without it):
        connect again, wait for the path's lock as long as a whole install may take, and judge
        from the node's record of the job, as `scpc deploy` does; roll back when the path holds
        the new filter without a record of its checks passing."""
        lines = str(error).strip().splitlines()
        lost = "the session was lost (%s)" % lines[0][:200] if lines else "the session was lost"
        result["session_lost"] = lost
        wait = args["timeout"] * 8
        read = {"protocol": PROTOCOL, "job": "read", "services": [service], "fetch": False, "enforcement": False, "timeout": wait}
        try:
            services = (self._call(node, read, "read").get("result") or {}).get("services") or []
        except AnsibleConnectionFailure as e:
            raise AnsibleActionFail("%s; connecting again failed (%s): what the host holds is not known" % (lost, str(e).strip()[:200]))
        if len(services) != 1 or "error" in services[0]:
            raise AnsibleActionFail("%s; connected again, but the node could not read %s" % (lost, args["path"]))
        held = services[0].get("holding") or {}
        actual = held.get("actual")
        history = held.get("history") or []
        recorded = history[0].get("sha256") if history else None
        last = held.get("last") or {}
        if last.get("job") == "install" and last.get("target") == new:
            if actual == new and recorded == new and last.get("result") == "installed":
                result.update(changed=True, warnings=["%s; connected again: the node had finished the install and its checks" % lost])
                return self._finish(result, "installed", None, new)
            if actual != new and last.get("result") == "rolled-back":
                result.update(failed=True, failure=last.get("failure"))
                result["msg"] = "%s; connected again: the node had rolled back itself (%s)" % (lost, step_text(last.get("failure")))
                return self._finish(result, "rolled-back", None, actual)
        if actual != new:
            result.update(failed=True, msg="%s; connected again: the host holds %s (read back), not the new filter" % (lost, actual or "no filter"))
            return self._finish(result, "failed", None, actual)
        request = {"protocol": PROTOCOL, "job": "rollback", "service": service, "keep": args["keep"], "timeout": args["timeout"]}
        try:
            outcome = self._call(node, request, "rollback").get("result") or {}
        except AnsibleConnectionFailure as e:
            raise AnsibleActionFail("%s; connected again, but the rollback failed (%s): the host holds the new filter" % (lost, str(e).strip()[:200]))
        result.update(failed=True, failure=outcome.get("failure"))
        result["msg"] = "%s; connected again and rolled back%s" % (lost, " (%s)" % step_text(outcome.get("failure")) if outcome.get("failure") else "")
        return self._finish(result, "rolled-back", new, outcome.get("now"))

    def _rollback(self, result, args, service, reading, check, node):
        if check:
            history = (reading or {}).get("holding", {}).get("history") or []
            if reading is None:
                result["msg"] = "the node program is not on this host yet: there is nothing to roll back"
                return self._finish(result, "nothing-to-revert", None, None)
            if len(history) >= 2:
                result["changed"] = True
                return self._finish(result, "would-revert", history[0].get("sha256"), history[1].get("sha256"))
            if len(history) == 1 and args["kind"] == "systemd":
                result["changed"] = True
                return self._finish(result, "would-remove", history[0].get("sha256"), None)
            return self._finish(result, "nothing-to-revert", reading["holding"].get("actual"), reading["holding"].get("actual"))
        request = {"protocol": PROTOCOL, "job": "rollback", "service": service, "keep": args["keep"], "timeout": args["timeout"]}
        outcome = (self._call(node, request, "rollback").get("result") or {})
        change = outcome.get("result")
        if change in ("reverted", "removed"):
            result["changed"] = True
        if outcome.get("failure"):
            result.update(failed=True, failure=outcome.get("failure"))
            result["msg"] = "reverted to %s, but %s" % (outcome.get("now") or "no filter", step_text(outcome.get("failure")))
        return self._finish(result, change or "failed", outcome.get("from"), outcome.get("now"))

    def _status(self, result, args, probe, reading):
        holding = reading["holding"]
        actual = holding.get("actual")
        history = holding.get("history") or []
        recorded = history[0].get("sha256") if history else None
        local = None
        if probe["arch"] is not None:
            try:
                local = self._build(args["artifacts"], args["policy"], probe["arch"])["sha256"]
            except AnsibleActionFail:
                local = None
        # as `scpc status` judges (deploy/src/rollout.rs)
        if actual is None and recorded is None:
            verdict = "not-installed"
        elif recorded is not None and actual != recorded:
            verdict = "drift"
        elif actual != local:
            verdict = "outdated"
        else:
            verdict = "in-sync"
        enforcement = reading.get("enforcement")
        result.update(
            verdict=verdict,
            actual=actual,
            recorded=recorded,
            local=local,
            enforcement=enforcement,
            history=history,
            last=holding.get("last"),
            in_sync=verdict == "in-sync"
            and not (enforcement and enforcement.get("state") in ("not-enforced", "enforced-other")),
        )
        return result

    def _finish(self, result, what, before, after):
        result.update(outcome=what, before=before, after=after)
        return result


def diff(path, reading, before, build):
    """Ansible's diff of an install: the filter before (read by the node program, with its
    bytes when they were fetched) and the build's."""
    size = None
    if reading is not None and reading.get("bytes") and before == reading["holding"].get("actual"):
        try:
            size = len(base64.b64decode(reading["bytes"], validate=True))
        except ValueError:
            size = None
    return {
        "before_header": path,
        "after_header": "%s (%s)" % (path, os.path.basename(build["file"])),
        "before": describe(before, size) if reading is not None else "(not read: the node program is not on this host yet)\n",
        "after": describe(build["sha256"], len(build["bytes"])),
    }


def step_text(failure):
    """A failed step: its name, how it ended and the last line of its standard error (never
    the command, which may hold secrets)."""
    if not failure:
        return "a step failed"
    status = failure.get("status")
    if isinstance(status, dict) and status:
        (kind, value), = status.items()
        how = {"exited": "exited %s", "signal": "killed by signal %s", "timed_out": "timed out after %s s"}.get(kind, "%s") % value
    else:
        how = str(status)
    lines = (failure.get("stderr") or "").strip().splitlines()
    tail = lines[-1][-200:] if lines else ""
    return "%s %s%s" % (failure.get("step"), how, (": " + tail) if tail else "")
