#!/usr/bin/env bash
# Idempotent set-up shared by the README's two commands: a venv with ragq installed,
# and a Redis answering at $RAGQ_REDIS_URL (started, or installed then started, if needed).
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf 'setup: %s\n' "$*" >&2; }

PYTHON=${PYTHON:-python3}
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  say "Python 3.11 or newer is needed (found: $("$PYTHON" --version 2>&1 || echo none)); set PYTHON=/path/to/python3.11"
  exit 1
fi
if ! "$PYTHON" -c 'import venv, ensurepip' 2>/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    say "installing python3-venv"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
  else
    say "the Python venv module is missing: install it (Debian: sudo apt-get install python3-venv)"
    exit 1
  fi
fi

# 1. The virtualenv: every dependency from the lock (exact versions, hash-checked; made by
#    scripts/lock.sh for Python 3.11 on Linux x86_64), then ragq itself from this tree with
#    --no-deps. Reinstalled only when pyproject.toml or the lock changes.
if [ ! -x .venv/bin/python ]; then
  say "creating .venv"
  "$PYTHON" -m venv .venv
fi
lock=requirements/dev.lock
stamp=.venv/.ragq-installed
want=$(cat pyproject.toml "$lock" | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  say "installing ragq and its dependencies ($lock) into .venv"
  log=.venv/pip.log
  pip() { .venv/bin/python -m pip --disable-pip-version-check "$@"; }
  if ! { pip install -U pip &&
         pip install --require-hashes -r "$lock" &&
         pip install --no-deps -e .; } >"$log" 2>&1 ||
     ! .venv/bin/python -c 'import api, workers, shared, arq, qdrant_client, wordllama' 2>>"$log"; then
    tail -n 30 "$log" >&2
    say "install failed (full log: $log)"
    exit 1
  fi
  echo "$want" > "$stamp"
fi

# nginx, for the edge config's tests (`nginx -t`, a real edge): they skip without it. As root
# only; RUNLEVEL=1 keeps the package from starting a system nginx on port 80.
if ! command -v nginx >/dev/null && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then say "installing nginx"; { apt-get update -qq && RUNLEVEL=1 DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nginx >/dev/null; } || say "nginx install failed: its tests will skip"; fi

# chromium, for the browser tests (the API docs pages, driven by Playwright through its
# executable path: no browser download): they skip without it. As root only.
if ! command -v chromium >/dev/null && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then say "installing chromium"; { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null; } || say "chromium install failed: the browser tests will skip"; fi

# 2. Redis.
url=${RAGQ_REDIS_URL:-redis://127.0.0.1:6379/0}
hostport=${url#redis://}; hostport=${hostport#*@}; hostport=${hostport%%/*}
host=${hostport%%:*}; port=${hostport##*:}; [ "$port" = "$hostport" ] && port=6379
redis_up() { .venv/bin/python - "$host" "$port" <<'PY'
import socket, sys
try:
    with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=2) as s:
        s.sendall(b"PING\r\n"); sys.exit(0 if s.recv(16).startswith(b"+PONG") else 1)
except OSError:
    sys.exit(1)
PY
}
if ! redis_up; then
  if ! command -v redis-server >/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      say "installing redis-server"
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
    else
      say "no Redis at $host:$port and redis-server is missing: install it (Debian: sudo apt-get install redis-server) or set RAGQ_REDIS_URL"
      exit 1
    fi
  fi
  if [ "$host" != 127.0.0.1 ] && [ "$host" != localhost ]; then
    say "no Redis answers at $host:$port (RAGQ_REDIS_URL); start it there"
    exit 1
  fi
  say "starting redis-server on port $port"
  redis-server --daemonize yes --bind 127.0.0.1 --port "$port" --save "" --appendonly no \
    --logfile "$PWD/.venv/redis-$port.log" --dir /tmp >/dev/null
  for _ in $(seq 50); do redis_up && break; sleep 0.1; done
  redis_up || { say "redis-server did not start (see .venv/redis-$port.log)"; exit 1; }
fi
