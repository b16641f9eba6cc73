#!/usr/bin/env bash
# The main job (make demo): a real workload under libhakmem, watched by hakwatch from its first
# allocation, its metrics shown while it runs; at the end, hakwatch's totals compared with the
# allocator's own (HAKMEM_STATS), which must be equal number for number.
#   DEMO_SECONDS=20          how long the workload runs
#   DEMO_LISTEN=127.0.0.1:10464   where hakwatch serves /metrics
#   DEMO_PROMETHEUS=1        afterwards, start a throwaway Prometheus with the project's rules next to
#                            hakwatch watching a churning workload, so the queries and the churn alert
#                            can be seen working (grafana/demo/prometheus.sh); Ctrl-C ends it
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${DEMO_SECONDS:-20}
listen=${DEMO_LISTEN:-127.0.0.1:10464}
out=$(mktemp -d /tmp/hakwatch-demo.XXXXXX)
say() { printf '\n== %s\n' "$*"; }

say "workload: scripts/demo_workload.py ($seconds s of threaded JSON + sqlite with cross-thread frees), PYTHONMALLOC=malloc"
say "hakwatch run --listen $listen --summary $out/hakwatch-summary.json -- python3 ... (libhakmem preloaded)"
SECONDS=0
PYTHONMALLOC=malloc HAKMEM_STATS="$out/hakmem-stats.json" \
	.venv/bin/hakwatch run --listen "$listen" --summary "$out/hakwatch-summary.json" \
	-- /usr/bin/python3 scripts/demo_workload.py "$seconds" >"$out/workload.out" &
watcher=$!
trap 'kill $watcher 2>/dev/null || true' EXIT
.venv/bin/python scripts/demo_show.py "http://$listen/metrics" 5
status=0
wait $watcher || status=$?
trap - EXIT
[ $status = 0 ] || { echo "demo: hakwatch run exited with status $status" >&2; exit $status; }
printf '\nworkload said: %s\n' "$(tail -n 1 "$out/workload.out")"
printf 'whole run, BPF load included: %d s\n' "$SECONDS"

say "hakwatch's totals (eBPF, $out/hakwatch-summary.json) against the allocator's own ($out/hakmem-stats.json)"
.venv/bin/python scripts/demo_compare.py "$out/hakmem-stats.json" "$out/hakwatch-summary.json"

if [ "${DEMO_PROMETHEUS:-0}" = 1 ]; then
	say "Prometheus with the project's rules, scraping hakwatch on a churning workload (Ctrl-C ends it)"
	exec grafana/demo/prometheus.sh
fi
say "Next: DEMO_PROMETHEUS=1 make demo starts Prometheus with the dashboards' queries and the churn alert; sudo .venv/bin/hakwatch --help"
