#!/usr/bin/env bash
# Checks deploy/prometheus with promtool: the config (and the rule files it loads), the alert
# rules, and the alerts' unit tests. Debian's `prometheus` package ships promtool and the
# server (the e2e scrape test runs the server); it is installed here when missing, as root.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf 'promtool: %s\n' "$*" >&2; }

if ! command -v promtool >/dev/null || ! command -v prometheus >/dev/null; then
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    say "promtool and prometheus are missing: install them (Debian: sudo apt-get install prometheus)"
    exit 1
  fi
  say "installing Debian's prometheus package (promtool and the server)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
  # The package enables a system-wide server on :9090; tests start their own on a free port,
  # so the service is stopped and disabled rather than left holding the port.
  if [ -d /run/systemd/system ]; then  # booted with systemd
    systemctl disable --now prometheus >/dev/null 2>&1 || true
  elif command -v service >/dev/null; then
    service prometheus stop >/dev/null 2>&1 || true
  fi
fi

dir=deploy/prometheus
echo "== promtool check config"; promtool check config "$dir/prometheus.yml"
echo "== promtool check rules"; promtool check rules "$dir/alerts.yml"
echo "== promtool test rules"; promtool test rules "$dir/alerts_test.yml"
