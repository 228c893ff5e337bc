#!/usr/bin/env bash
# README command 1: set up, then run ragq on its embedded defaults (`ragq dev`).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec .venv/bin/ragq dev "$@"
