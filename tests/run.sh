#!/usr/bin/env bash
# The whole test suite from a fresh machine: Debian packages, a venv, lint, types, then pytest.
# Usage: ./tests/run.sh [pytest args...]   (run as root, or with sudo available, for apt-get)
set -euo pipefail
cd "$(dirname "$0")/.."

DEBS=(mosquitto snmpd snmp mbpoll prometheus prometheus-snmp-exporter chromium iproute2 systemd)
BINS=(mosquitto snmpd snmpget snmpbulkwalk mbpoll prometheus promtool chromium systemd-analyze ip)
missing=()
for b in "${BINS[@]}"; do command -v "$b" >/dev/null 2>&1 || [ -x "/usr/sbin/$b" ] || missing+=("$b"); done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing Debian packages (missing: ${missing[*]})"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${DEBS[@]}"
fi
for b in "${BINS[@]}"; do
  command -v "$b" >/dev/null 2>&1 || [ -x "/usr/sbin/$b" ] || { echo "FATAL: $b still missing" >&2; exit 1; }
done

PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/pip install -q --upgrade pip >/dev/null
.venv/bin/pip install -q -e '.[test]'

echo "== ruff";  .venv/bin/ruff check .
echo "== mypy";  .venv/bin/mypy
echo "== pytest"; PATH="/usr/sbin:$PATH" .venv/bin/pytest -q "$@"
