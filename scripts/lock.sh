#!/usr/bin/env bash
# Regenerate the lock files from pyproject.toml: requirements/dev.lock (runtime + the `dev`
# extra: what scripts/setup.sh installs) and requirements/runtime.lock (what the Dockerfile
# installs), every package pinned (==) with the hashes of its files, resolved for CPython 3.11
# on Linux x86_64. The runtime lock is resolved under the dev lock's pins, so both hold the
# same version of every package they share.
#
# Existing pins are kept where pyproject.toml still allows them; extra arguments go to
# `uv pip compile`: `scripts/lock.sh --upgrade` moves everything, `--upgrade-package numpy`
# one package. uv runs from its own venv (.venv/lock-tools), so the project's venv is untouched.
set -euo pipefail
cd "$(dirname "$0")/.."

UV_VERSION=0.13.9
PYTHON=${PYTHON:-python3}
tools=.venv/lock-tools

if [ "$("$tools/bin/uv" --version 2>/dev/null | cut -d" " -f1-2)" != "uv $UV_VERSION" ]; then
  echo "lock: installing uv $UV_VERSION into $tools" >&2
  "$PYTHON" -m venv "$tools"
  "$tools/bin/python" -m pip install --disable-pip-version-check -q "uv==$UV_VERSION"
fi

# lock FILE WHAT [uv pip compile arguments...]
lock() {
  local out=$1 what=$2
  shift 2
  "$tools/bin/uv" pip compile pyproject.toml --quiet --generate-hashes --no-header \
    --python-version 3.11 --python-platform x86_64-unknown-linux-gnu --output-file "$out" "$@"
  {
    echo "# ragq's $what, locked."
    echo "# Made by scripts/lock.sh (uv pip compile --generate-hashes) from pyproject.toml: every"
    echo "# package pinned (==) with the sha256 of each of its published files."
    echo "# Target: CPython 3.11 on Linux x86_64 (glibc); other platforms are not covered."
    echo "# The project itself is not in it: install this with --require-hashes, then ragq from"
    echo "# the working tree with --no-deps. Do not edit by hand: run scripts/lock.sh."
    cat "$out"
  } >"$out.new"
  mv "$out.new" "$out"
}

mkdir -p requirements
lock requirements/dev.lock "runtime and development dependencies (extra \`dev\`)" \
  --extra dev "$@"
lock requirements/runtime.lock "runtime dependencies (the image's)" \
  --constraint requirements/dev.lock "$@"
echo "lock: wrote requirements/dev.lock and requirements/runtime.lock" >&2
