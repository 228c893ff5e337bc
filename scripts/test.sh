#!/usr/bin/env bash
# README command 2: set up, then run every quality gate and the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
export RAGQ_TEST_REDIS_URL=${RAGQ_TEST_REDIS_URL:-redis://127.0.0.1:6379/13}
RAGQ_REDIS_URL=$RAGQ_TEST_REDIS_URL scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"

echo "== ruff check"; ruff check .
echo "== ruff format --check"; ruff format --check .
echo "== mypy (strict)"; mypy
echo "== import-linter"; lint-imports
echo "== pytest"; pytest -p no:cacheprovider --cov --cov-report=term "$@"
