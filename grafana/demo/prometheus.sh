#!/usr/bin/env bash
# One machine, the whole picture: hakwatch watching every libhakmem process, two copies of a workload
# (one with the SuperSlab LRU disabled, so it churns; one with it), and a throwaway Prometheus on
# 127.0.0.1:9090 with the project's rules (`for:` shortened so the churn alert shows within a minute).
# Prints the queries the dashboards use and waits for the churn alert. Ctrl-C stops everything.
#   grafana/demo/prometheus.sh [PROMETHEUS_PORT] [HAKWATCH_PORT]
set -euo pipefail
cd "$(dirname "$0")/../.."
prom_port=${1:-9090}
hw_port=${2:-10464}
tmp=$(mktemp -d /tmp/hakwatch-prometheus.XXXXXX)
lib=$PWD/libhakmem/build/libhakmem.so
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT INT TERM

gcc -O2 -o "$tmp/superslab_churn" tests/grafana/programs/superslab_churn.c
.venv/bin/hakwatch attach --lib "$lib" --listen "127.0.0.1:$hw_port" --retention 120 & pids+=($!)
HAKMEM_SS_LRU_SIZE=0 LD_PRELOAD=$lib "$tmp/superslab_churn" 3600 & pids+=($!)
churn=$!
LD_PRELOAD=$lib "$tmp/superslab_churn" 3600 & pids+=($!)
quiet=$!
sed -E 's/^( +)for: \S+$/\1for: 15s/' grafana/alerts/hakwatch.rules.yml > "$tmp/rules.yml"
cat > "$tmp/prometheus.yml" <<YAML
global: {scrape_interval: 2s, evaluation_interval: 2s}
rule_files: [$tmp/rules.yml]
scrape_configs:
  - job_name: hakwatch
    static_configs: [{targets: ["127.0.0.1:$hw_port"]}]
YAML
prometheus --config.file="$tmp/prometheus.yml" --storage.tsdb.path="$tmp/data" \
	--web.listen-address="127.0.0.1:$prom_port" >"$tmp/prometheus.log" 2>&1 & pids+=($!)

q() { curl -s "http://127.0.0.1:$prom_port/api/v1/query" --data-urlencode "query=$1"; }
until curl -sf "http://127.0.0.1:$prom_port/-/ready" >/dev/null; do sleep 0.5; done
cat <<TEXT
Prometheus: http://127.0.0.1:$prom_port  (hakwatch: http://127.0.0.1:$hw_port/metrics)
Two copies of one workload: pid $churn with HAKMEM_SS_LRU_SIZE=0, pid $quiet with the default LRU.
Queries to try (the dashboards' panels use the same):
  hakmem:memory_syscalls_per_1k_allocs:ratio1m
  sum by (pid, syscall) (rate(hakmem_syscalls_total[1m]))
  sum by (pid, event) (rate(hakmem_superslab_events_total[1m]))
  ALERTS{alertname="HakmemSyscallChurn"}
Waiting for the churn alert...
TEXT
until q 'ALERTS{alertname="HakmemSyscallChurn",alertstate="firing"}' | grep -q "\"pid\":\"$churn\""; do sleep 2; done
echo "HakmemSyscallChurn is firing for pid $churn (the one without the LRU). Syscalls per 1000 allocations now:"
q 'hakmem:memory_syscalls_per_1k_allocs:ratio1m' | .venv/bin/python -c '
import json, sys
for r in json.load(sys.stdin)["data"]["result"]:
    pid, value = r["metric"]["pid"], float(r["value"][1])
    print(f"  pid {pid:>7}: {value:10.2f}")'
echo "Ctrl-C stops everything."
wait
