#!/usr/bin/env bash
# The benchmarks (see bench/run.py --help): builds what they need, writes bench/RESULTS.md and results.png.
set -euo pipefail
cd "$(dirname "$0")/.."
exec .venv/bin/python bench/run.py "$@"
