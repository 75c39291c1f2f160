#!/usr/bin/python
# Copyright scpc authors. Apache-2.0, like the rest of the repository.
# The documentation of the scpc_filter action (plugins/action/scpc_filter.py), which does the
# work on the controller: nothing of this file runs on a host.

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: scpc_filter
short_description: Install, roll back or read a compiled seccomp filter through the scpc node program
description:
  - Installs the filter C(scpc build) wrote for a policy (C(ARTIFACTS/POLICY.ARCH.bpf), checked
    against C(POLICY.manifest.json)) at a service's path on the host, through the node program
    C(scpc-node serve) the way C(scpc deploy) does. The node program verifies the sha256, writes
    atomically under a per-path lock, keeps earlier versions, runs the service's C(reload) and
    C(health) commands and rolls back itself when one fails.
  - An action plugin. It runs on the controller and uses only the connection's raw command
    execution with standard input; the host needs a POSIX C(sh), C(uname), C(od), C(sha256sum),
    C(stat) and C(cat) (busybox has them) and no Python. Use it with gather_facts set to false on
    hosts without Python.
  - The architecture comes from the host's C(uname -m) (which filter) and the ELF header of its
    C(/bin/sh) (which node program). The node program of that architecture is brought from
    O(node_programs) when the host lacks it or has another one (sha256 compared).
  - Idempotent. C(changed) when the filter at O(path) changes, when a rollback reverts, and when
    the node program is brought.
version_added: "0.1.0"
options:
  service:
    description: The service's name (letters, digits, C(-_.@:)), recorded in the node's state.
    type: str
    required: true
  path:
    description: The absolute path of the service's filter on the host.
    type: str
    required: true
  state:
    description:
      - C(present) installs the policy's filter for the host's architecture.
      - C(rolled_back) asks the node program to put back the version before the current one.
      - C(status) changes nothing in the filter (it may bring the node program) and reports what the
        path holds, what was recorded, the local build's filter, the verdict C(scpc status)
        gives (C(in-sync), C(outdated), C(drift), C(not-installed)) and whether the service's
        processes run under it (with O(pid_file) or O(process), compared with the kernel's copy of
        the loaded program through PTRACE_SECCOMP_GET_FILTER).
    type: str
    choices: [present, rolled_back, status]
    default: present
  policy:
    description: The policy's name. Required with C(present) and C(status).
    type: str
  artifacts:
    description: The directory C(scpc build POLICY.scp -o DIR) wrote, on the controller. Required with C(present) and C(status).
    type: path
  node_programs:
    description:
      - The directory of node programs on the controller, C(DIR/ARCH/scpc-node) (C(deploy/node/build.sh DIR) builds them).
      - Defaults to the environment variable C(SCPC_NODE_PROGRAMS) of the controller.
    type: path
  node_program:
    description: Where the node program lives on the host.
    type: str
    default: /var/lib/scpc/scpc-node
  kind:
    description: How the service is started under its filter (C(systemd) needs O(unit); C(command) its own O(reload)).
    type: str
    choices: [command, systemd]
    default: command
  unit:
    description: For C(systemd), the unit (C(nginx.service)).
    type: str
  reload:
    description: For C(command), run by the node program after installing (restarts the service under the filter).
    type: str
  health:
    description: Run by the node program after the service restarted; a non-zero exit or a timeout puts the previous filter back and fails the task.
    type: str
  pid_file:
    description: The file holding the service's main process id (for the enforcement check).
    type: str
  process:
    description: The name of the service's processes (C(/proc/PID/comm)), for the enforcement check.
    type: str
  keep:
    description: Earlier versions kept on the host for rollback (1 to 100).
    type: int
    default: 3
  timeout:
    description: Seconds each step (reload, health, systemctl) may run, and the wait for the path's lock.
    type: int
    default: 30
  force:
    description: Replace a file that is not a seccomp filter at a path scpc never installed to.
    type: bool
    default: false
  operator:
    description: Who deploys, recorded in the node's history.
    type: str
    default: ansible
attributes:
  check_mode:
    support: full
    description: Reads what the path holds and reports what would change; writes nothing (not even the node program).
  diff_mode:
    support: full
    description: Before and after as sha256 and size.
author: scpc authors
"""

EXAMPLES = r"""
- name: Install the mosquitto filter
  scpc.fleet.scpc_filter:
    service: mqtt
    policy: mosquitto
    path: /etc/scpc/mosquitto.bpf
    artifacts: "{{ playbook_dir }}/build"
    node_programs: "{{ playbook_dir }}/node-programs"
    reload: /etc/init.d/mosquitto restart
    health: pidof mosquitto

- name: Roll back to the previous filter
  scpc.fleet.scpc_filter:
    service: mqtt
    path: /etc/scpc/mosquitto.bpf
    node_programs: "{{ playbook_dir }}/node-programs"
    state: rolled_back

- name: What is deployed and enforced
  scpc.fleet.scpc_filter:
    service: mqtt
    policy: mosquitto
    path: /etc/scpc/mosquitto.bpf
    artifacts: "{{ playbook_dir }}/build"
    node_programs: "{{ playbook_dir }}/node-programs"
    pid_file: /run/mosquitto.pid
    state: status
  register: seen
"""

RETURN = r"""
outcome:
  description: C(installed), C(unchanged), C(rolled-back) (a check failed and the previous filter is back), C(would-install), C(reverted), C(removed), C(nothing-to-revert), C(would-revert), C(would-remove).
  returned: with present and rolled_back
  type: str
before:
  description: sha256 of the filter at the path before (null, no file).
  returned: with present and rolled_back
  type: str
after:
  description: sha256 of the filter at the path after (null, no file).
  returned: with present and rolled_back
  type: str
failure:
  description: The step that failed (C(step), C(status), C(stderr), an excerpt of its standard error; never the command).
  returned: when a check failed
  type: dict
machine:
  description: The host's C(uname -m).
  returned: always
  type: str
arch:
  description: scpc's architecture for it (which filter).
  returned: always
  type: str
node_program:
  description: C(present), C(brought) or C(would be brought).
  returned: always
  type: str
verdict:
  description: With status, as C(scpc status) says (C(in-sync), C(outdated), C(drift), C(not-installed)).
  returned: with status
  type: str
actual:
  description: With status, sha256 of the file at the path.
  returned: with status
  type: str
recorded:
  description: With status, sha256 of what scpc last installed there.
  returned: with status
  type: str
local:
  description: With status, sha256 of the local build's filter for the host.
  returned: with status
  type: str
enforcement:
  description: With status, the node program's enforcement check (C(state) enforced, enforced-other, not-enforced or unknown, C(why), C(processes)).
  returned: with status
  type: dict
in_sync:
  description: With status, whether C(scpc status) would count the host in sync (verdict in-sync and not found unenforced).
  returned: with status
  type: bool
"""
