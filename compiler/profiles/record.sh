#!/usr/bin/env bash
# Records the syscall frequencies behind scpc's built-in profile (strace -f -c on real
# workloads, on loopback). Needs nginx-light, redis-server, redis-tools, curl, strace, git,
# python3. Writes nginx.strace-c.txt, redis.strace-c.txt, git-python.strace-c.txt here.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
cd "$work"
mkdir www && head -c 20000 /dev/urandom | base64 > www/index.html
cat > nginx.conf <<CONF
worker_processes 1;
daemon off;
error_log $work/error.log;
pid $work/nginx.pid;
events { worker_connections 256; }
http { access_log $work/access.log; server { listen 127.0.0.1:18080; root $work/www; } }
CONF
# nginx: 2,000 GETs of a 27 KB file
strace -f -c -o "$here/nginx.strace-c.txt" nginx -c "$work/nginx.conf" -p "$work" & sleep 1
for i in $(seq 1 2000); do echo 'url = "http://127.0.0.1:18080/index.html"'; echo 'output = /dev/null'; done > urls.txt
curl -s -K urls.txt; kill -QUIT "$(cat nginx.pid)"; sleep 1
# redis: redis-benchmark, 20,000 requests each of SET, GET, INCR, LPUSH
strace -f -c -o "$here/redis.strace-c.txt" redis-server --port 16379 --save '' --appendonly no & sleep 1
redis-benchmark -p 16379 -n 20000 -c 4 -q -t set,get,incr,lpush >/dev/null
redis-cli -p 16379 shutdown nosave >/dev/null || true; sleep 1
# git and python: clone, log, status, diff of this repository, then a python loop
strace -f -c -o "$here/git-python.strace-c.txt" sh -c "git clone -q '$here/../..' repo && cd repo && git log --oneline >/dev/null && git status >/dev/null && git diff HEAD~3 >/dev/null; python3 -c 'import json,os; [json.dumps(os.listdir(\".\")) for _ in range(1000)]'"
rm -rf "$work"
