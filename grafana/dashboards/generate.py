"""Dashboards as code (Grafana foundation SDK, pinned in pyproject.toml for Grafana 11.6).

    .venv/bin/python -m grafana.dashboards.generate     # rewrites grafana/dashboards/*.json

Metric names come from hakwatch.export.metrics, the module the exporter itself uses. tests/grafana checks
that the JSON in the repository is what this script makes, and (end to end, against a real
Prometheus) that every panel's query returns data.
"""

import json
from pathlib import Path

from grafana_foundation_sdk.builders import common as cb
from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.builders import heatmap, prometheus, stat, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common as cm
from grafana_foundation_sdk.models import dashboard as dm
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

from hakwatch.export import metrics as m
from hakwatch.contract.layout import load

OUT = Path(__file__).resolve().parent
DS = dm.DataSourceRef(type_val="prometheus", uid="${datasource}")
# The syscalls of churn, as the alert HakmemSyscallChurn counts them (probes/hakwatch_maps.h).
CHURN = f'syscall=~"{"|".join(load().churn_syscalls)}"'
# The layers the alerts call held-but-free (fragmentation) and retained (DESIGN.md, "The memory layers").
HELD_FREE = 'layer=~"thread_cache|remote_free|slab_free|free_pages"'
RETAINED = 'layer=~"superslab_lru|large_cache"'


def spelled(names) -> str:
    """("a", "b", "c") -> "a, b and c", for descriptions."""
    return ", ".join(names[:-1]) + " and " + names[-1]


def query(expr: str, legend: str = "") -> prometheus.Dataquery:
    return prometheus.Dataquery().expr(expr).legend_format(legend).datasource(DS)


def thresholds(*steps: tuple[float | None, str]) -> db.ThresholdsConfig:
    return db.ThresholdsConfig().mode(dm.ThresholdsMode.ABSOLUTE).steps([dm.Threshold(v, c) for v, c in steps])


OK = (None, "green")


def ts(title, description, unit, queries, *, width=12, limits=(OK,)):
    p = (timeseries.Panel().title(title).description(description).unit(unit).min(0).span(width).height(8)
         .datasource(DS).thresholds(thresholds(*limits)))
    for q in queries:
        p = p.with_target(q)
    return p


def single(title, description, unit, q, limits=(OK,), width=6):
    return (stat.Panel().title(title).description(description).unit(unit).span(width).height(4)
            .datasource(DS).thresholds(thresholds(*limits)).with_target(q))


def variable(name, label, query_text, *, include_all=True):
    v = (db.QueryVariable(name).label(label).query(query_text).datasource(DS)
         .refresh(dm.VariableRefresh.ON_TIME_RANGE_CHANGED).multi(include_all))
    return v.include_all(True).all_value(".*") if include_all else v


def datasource_variable():
    return db.DatasourceVariable("datasource").label("Prometheus").type("prometheus")


def where_the_memory_goes(sel: str):
    """The layers stacked (they add up to the allocator's mapped bytes), the kernel's RSS and the
    allocator's resident estimate as lines over them."""
    line = [dm.DynamicConfigValue(id_val="custom.stacking", value={"mode": "none", "group": "lines"}),
            dm.DynamicConfigValue(id_val="custom.fillOpacity", value=0),
            dm.DynamicConfigValue(id_val="custom.lineWidth", value=2)]
    return (ts("Where the memory goes", "The allocator's mapped bytes by layer, stacked: live (in use), then what "
               "it holds free inside SuperSlabs in use (thread caches, remote queues, slab free lists, free pages: "
               "fragmentation), never-carved slab space, empty SuperSlabs kept (LRU; purged ones are address "
               "space only), the unused rest of SuperSlab batches, the large-block cache, metadata. Lines: the "
               "processes' RSS as the kernel counts it, and the allocator's resident estimate; RSS above the "
               "estimate is not the allocator's.", "bytes",
               [query(f"sum by (layer) ({m.MEMORY_BYTES}{{{sel}}})", "{{layer}}").ref_id("A"),
                query(f"sum({m.PROCESS_RESIDENT}{{{sel}}})", "RSS (kernel)").ref_id("B"),
                query(f"sum({m.RESIDENT_ESTIMATE}{{{sel}}})", "allocator resident (estimate)").ref_id("C")],
               width=24)
            .stacking(cb.StackingConfig().mode(cm.StackingMode.NORMAL))
            .fill_opacity(40)
            .override_by_query("B", line).override_by_query("C", line))


def memory_panels(sel: str, by: str):
    live = f"sum by ({by}) ({m.MEMORY_BYTES}{{{sel},layer=\"live\"}})"
    held = f"sum by ({by}) ({m.MEMORY_BYTES}{{{sel},{HELD_FREE}}})"
    return [
        db.Row("Memory"),
        where_the_memory_goes(sel),
        ts("Live bytes by class (top 10)", "Bytes handed out and not freed, by size class (block size in bytes) or "
           "large: which sizes hold the memory. A class that only grows is where to look for a leak.", "bytes",
           [query(f"topk(10, sum by (class) ({m.LIVE_BYTES}{{{sel}}}))", "{{class}}")]),
        ts("Fragmentation and retention", "Free bytes held inside SuperSlabs in use per live byte (fragmentation: "
           "alert HakmemFragmentation above 2 with 64 MiB held), and bytes the allocator could give back but keeps "
           "(empty SuperSlabs in the LRU, the large-block cache: alert HakmemMemoryRetained).", "short",
           [query(f"({held}) / ({live})", "held free per live byte {{" + by + "}}"),
            query(f"sum by ({by}) ({m.MEMORY_BYTES}{{{sel},{RETAINED}}}) / 1048576", "retained MiB {{" + by + "}}")],
           limits=(OK, (2, "orange"))),
        ts("Requested and handed out", "Bytes per second the program asked for and the allocator handed out (class "
           "sizes, large mappings): the gap is internal fragmentation.", "Bps",
           [query(f"sum(rate({m.REQUESTED_BYTES}_total{{{sel}}}[$__rate_interval]))", "requested"),
            query(f"sum(rate({m.ALLOCATED_BYTES}_total{{{sel}}}[$__rate_interval]))", "handed out")]),
    ]


def panels(sel: str, by: str):
    """The panels both dashboards share; `sel` selects series, `by` is the grouping of the lines."""
    allocs = f"sum by ({by}) (rate({m.ALLOCS}_total{{{sel}}}[$__rate_interval]))"
    calls = f"sum by ({by}) (rate({m.SYSCALLS}_total{{{sel},{CHURN}}}[$__rate_interval]))"
    return memory_panels(sel, by) + [
        db.Row("Allocator"),
        ts("Allocations and frees per second", "Blocks handed out (all classes) and freed, by free route: tls_sll "
           "is the thread-cache fast path; ss_remote means cross-thread frees.", "ops",
           [query(f"sum(rate({m.ALLOCS}_total{{{sel}}}[$__rate_interval]))", "allocations"),
            query(f"sum by (route) (rate({m.FREES}_total{{{sel}}}[$__rate_interval]))", "free {{route}}")]),
        ts("Refills per second by stage", "Thread-cache misses by the stage that served them. lru and map mean "
           "a SuperSlab had to be found: the allocator is growing.", "ops",
           [query(f"sum by (stage) (rate({m.REFILLS}_total{{{sel}}}[$__rate_interval]))", "{{stage}}")]),
        ts("SuperSlabs", "2 MiB regions in use (live), empty ones kept in the LRU (cached) and, of those, purged.", "short",
           [query(f"sum by (state) ({m.SUPERSLABS}{{{sel}}})", "{{state}}")]),
        ts("SuperSlab events per second", "Maps, unmaps, LRU traffic and purges. Unmaps close to maps with few "
           "LRU hits is thrash (alert HakmemSuperSlabThrash).", "ops",
           [query(f"sum by (event) (rate({m.SUPERSLAB_EVENTS}_total{{{sel}}}[$__rate_interval]))", "{{event}}")]),
        ts("Heap misuse detected", "Double frees, frees of pointers that are no block, overwritten free lists, "
           "as libhakmem detected them (each also a line on the process's stderr; by default the process "
           "aborted). Anything above 0 is a bug in the program: alert HakmemHeapErrors.", "short",
           [query(f"sum by ({by}, kind) (increase({m.HEAP_ERRORS}_total{{{sel}}}[$__rate_interval]))",
                  "{{kind}} {{" + by + "}}")],
           limits=(OK, (1, "red"))),
        db.Row("Kernel"),
        ts("Memory syscalls per second", f"{spelled(load().syscalls)} made by the watched "
           "processes (all of their calls, not only the allocator's).", "ops",
           [query(f"sum by (syscall) (rate({m.SYSCALLS}_total{{{sel}}}[$__rate_interval]))", "{{syscall}}")],
           limits=(OK, (100, "orange"), (1000, "red"))),
        ts("Memory syscalls per 1000 allocations", f"The churn ratio ({spelled(load().churn_syscalls)}): a healthy "
           "allocator stays near 0. Alert HakmemSyscallChurn fires above 5.", "short",
           [query(f"1000 * ({calls}) / ({allocs})", "{{" + by + "}}")],
           limits=(OK, (1, "orange"), (5, "red"))),
        heatmap.Panel().title("Memory syscall latency").description(
            "Time from syscall entry to exit (log2 buckets); long munmap/madvise calls are TLB shootdowns "
            "and page freeing.").span(12).height(8).datasource(DS).calculate(False)
        .with_target(query(f"sum by (le) (rate({m.SYSCALL_DURATION}_bucket{{{sel}}}[$__rate_interval]))", "{{le}}")
                     .format(PromQueryFormat.HEATMAP)),
        ts("Page faults per second", "User-mode page faults of the watched processes: first touches of fresh "
           "or purged memory.", "ops",
           [query(f"sum by ({by}) (rate({m.PAGE_FAULTS}_total{{{sel}}}[$__rate_interval]))", "{{" + by + "}}")],
           limits=(OK, (50000, "orange"))),
    ]


def overview():
    sel = 'instance=~"$instance"'
    d = (db.Dashboard("hakwatch: allocator overview").uid("hakwatch-overview").tags(["hakwatch", "hakmem"])
         .description("What libhakmem does on every host, and what it makes the kernel do.")
         .refresh("30s").time("now-1h", "now")
         .with_variable(datasource_variable())
         .with_variable(variable("instance", "Host", f"label_values({m.BUILD_INFO}, instance)")))
    for p in panels(sel, "instance"):
        d = d.with_row(p) if isinstance(p, db.Row) else d.with_panel(p)
    d = d.with_row(db.Row("hakwatch itself"))
    for p in (
        single("Targets", "Processes watched now.", "short", query(f"sum({m.TARGETS}{{{sel}}})")),
        single("Targets dropped", "Processes not watched because --max-targets was reached (last hour).", "short",
               query(f"sum(increase({m.TARGETS_DROPPED}_total{{{sel}}}[1h]))"), limits=(OK, (1, "red"))),
        single("Scrape duration", "Time hakwatch needed to read its maps for the last scrape.", "s",
               query(f"max({m.SCRAPE_DURATION}{{{sel}}})"), limits=(OK, (0.1, "orange"), (1, "red"))),
        single("hakwatch up", "Exporters answering Prometheus.", "short",
               query(f'sum(up{{job="hakwatch",{sel}}})'), limits=((None, "red"), (1, "green"))),
    ):
        d = d.with_panel(p)
    return d.build()


def process():
    sel = 'instance=~"$instance",comm=~"$comm",pid=~"$pid"'
    d = (db.Dashboard("hakwatch: process").uid("hakwatch-process").tags(["hakwatch", "hakmem"])
         .description("One process (or a few) under libhakmem: its caches, SuperSlabs and memory syscalls.")
         .refresh("10s").time("now-30m", "now")
         .with_variable(datasource_variable())
         .with_variable(variable("instance", "Host", f"label_values({m.TARGET_INFO}, instance)"))
         .with_variable(variable("comm", "Command", f'label_values({m.TARGET_INFO}{{instance=~"$instance"}}, comm)'))
         .with_variable(variable("pid", "PID", f'label_values({m.TARGET_INFO}{{instance=~"$instance",comm=~"$comm"}}, pid)')))
    for p in panels(sel, "pid"):
        d = d.with_row(p) if isinstance(p, db.Row) else d.with_panel(p)
    d = d.with_row(db.Row("Size classes"))
    d = d.with_panel(ts("Allocations per second by class", "The ten busiest size classes (block size in bytes).",
                        "ops", [query(f"topk(10, sum by (class) (rate({m.ALLOCS}_total{{{sel}}}[$__rate_interval])))", "{{class}}")]))
    d = d.with_panel(ts("Refills per second by class", "Thread-cache misses by class: a class that refills "
                        "often relative to its allocations has a cache too small for its traffic.", "ops",
                        [query(f"topk(10, sum by (class) (rate({m.REFILLS}_total{{{sel}}}[$__rate_interval])))", "{{class}}")]))
    return d.build()


def render(dash) -> str:
    return json.dumps(dash, cls=JSONEncoder, indent=2, sort_keys=True) + "\n"


DASHBOARDS = {"overview.json": overview, "process.json": process}


def main():
    for name, make in DASHBOARDS.items():
        (OUT / name).write_text(render(make()))
        print(f"wrote {OUT / name}")


if __name__ == "__main__":
    main()
