#!/usr/bin/env bash
# Every test suite: allocator, unit, BPF (real, as root), Grafana rules and end to end.
# Extra arguments go to pytest (e.g. scripts/test.sh tests/allocator -x).
set -euo pipefail
cd "$(dirname "$0")/.."
exec .venv/bin/python -m pytest "$@"
