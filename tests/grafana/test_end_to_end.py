"""End to end with real parts: Prometheus scraping hakwatch watching processes under libhakmem, the
project's rules loaded. Every dashboard panel's query returns data; the churn alert fires for the
process that churns, not for the one that does not, and clears when the churn stops; each memory
alert fires for the workload of its shape and for no other; the heap-misuse alert fires for a process
that aborted on a double free and for one that reported an invalid free and went on, not for a clean one."""

import json
import os
import re
import signal
import subprocess
from pathlib import Path

from hakwatch_helpers import wait_for

DASHBOARDS = Path(__file__).resolve().parents[2] / "grafana" / "dashboards"


def panel_queries():
    for path in sorted(DASHBOARDS.glob("*.json")):
        for panel in json.loads(path.read_text())["panels"]:
            for target in panel.get("targets", []):
                yield path.stem, panel["title"], target["expr"]


def substitute(expr: str) -> str:
    """What Grafana does before sending a query: variables to their 'All' value, the rate interval."""
    expr = expr.replace("$__rate_interval", "15s")
    return re.sub(r"\$(instance|comm|pid)\b", ".*", expr)


def test_every_panel_query_returns_data(stack):
    prom = stack["prometheus"]
    queries = list(panel_queries())
    assert len(queries) >= 15
    missing = {}
    for dash, title, expr in queries:
        q = substitute(expr)
        try:
            wait_for(lambda: prom.query(q), timeout=60, what=f"data for {dash} / {title}")
        except AssertionError:
            missing[f"{dash} / {title}"] = q
    assert not missing, f"panels without data: {missing}"


def test_churn_alert_fires_for_the_churning_process_only_and_clears(stack):
    prom, churn, quiet = stack["prometheus"], stack["churn"], stack["quiet"]
    firing = wait_for(lambda: prom.alerts("HakmemSyscallChurn"), timeout=90, what="HakmemSyscallChurn to fire")
    pids = {a["labels"]["pid"] for a in firing}
    assert str(churn.pid) in pids
    assert str(quiet.pid) not in pids, "the process with the SuperSlab LRU should not churn"
    ratio = prom.query(f'hakmem:memory_syscalls_per_1k_allocs:ratio1m{{pid="{churn.pid}"}}')
    assert float(ratio[0]["value"][1]) > 5
    assert "memory syscalls per 1000 allocations" in firing[0]["annotations"]["summary"]
    assert not [a for a in prom.alerts("HakmemSyscallChurn", "pending") if a["labels"]["pid"] == str(quiet.pid)]
    churn.kill()
    churn.wait()
    wait_for(lambda: not [a for a in prom.alerts("HakmemSyscallChurn") if a["labels"]["pid"] == str(churn.pid)],
             timeout=120, what="the churn alert to clear after the churn stopped")


MEMORY_ALERTS = {"HakmemMemoryLeak": "leak", "HakmemFragmentation": "swiss", "HakmemMemoryRetained": "retain"}


def test_each_memory_alert_fires_for_its_workload_only(stack):
    prom, shapes = stack["prometheus"], stack["shapes"]
    for alert, shape in MEMORY_ALERTS.items():
        firing = wait_for(lambda: prom.alerts(alert), timeout=90, what=f"{alert} to fire")
        assert {a["labels"]["pid"] for a in firing} == {str(shapes[shape].pid)}, \
            f"{alert} fired for {[(a['labels']['comm'], a['labels']['pid']) for a in firing]}, expected {shape} only"
    # the steady workload, and every other, stays out of every memory alert
    quiet = {str(shapes["steady"].pid), str(stack["churn"].pid), str(stack["quiet"].pid)}
    for alert in MEMORY_ALERTS:
        noisy = [a for state in ("firing", "pending") for a in prom.alerts(alert, state) if a["labels"]["pid"] in quiet]
        assert not noisy, f"{alert}: {noisy}"
    live = prom.query(f'hakmem:live_bytes{{pid="{shapes["swiss"].pid}"}}')
    held = prom.query(f'hakmem:held_free_bytes{{pid="{shapes["swiss"].pid}"}}')
    assert float(held[0]["value"][1]) > 10 * float(live[0]["value"][1])


def test_heap_error_alert_fires_for_the_misusing_processes_only(stack, c_program, libhakmem):
    prom = stack["prometheus"]
    misuse = c_program(Path(__file__).resolve().parents[1] / "allocator" / "programs" / "misuse.c", "-fno-builtin")
    env = dict(os.environ, LD_PRELOAD=str(libhakmem))
    runs = {"aborted": ([misuse, "double_free_remote"], env),
            "reported": ([misuse, "interior"], dict(env, HAKMEM_HEAP_ERRORS="report")),
            "clean": ([misuse, "interior", "clean"], env)}
    pids = {}
    for name, (argv, run_env) in runs.items():
        proc = subprocess.Popen(argv, env=run_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        pids[name] = str(proc.pid)
        assert proc.wait(60) == (-signal.SIGABRT if name == "aborted" else 0), name
    want = {(pids["aborted"], "double_free"), (pids["reported"], "invalid_pointer")}

    def firing_for_both():
        got = {(a["labels"]["pid"], a["labels"]["kind"]) for a in prom.alerts("HakmemHeapErrors")}
        return got if want <= got else None
    firing = wait_for(firing_for_both, timeout=90, what="HakmemHeapErrors to fire for both misusing processes")
    assert firing == want, f"HakmemHeapErrors fired for {firing}, expected {want} (the clean run was {pids['clean']})"
