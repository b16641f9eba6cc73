"""Fixtures of the Grafana/Prometheus suite: a real Prometheus (Debian's package) on loopback with a
throwaway data directory, scraping a real hakwatch that watches real processes under libhakmem."""

import json
import os
import re
import signal
import subprocess
import sys
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bpf"))
from hakwatch_helpers import Hakwatch, free_port, wait_for  # noqa: E402  (shared with the BPF suite)

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "grafana" / "alerts" / "hakwatch.rules.yml"
PROGRAMS = Path(__file__).parent / "programs"


def fast_rules(dst: Path) -> Path:
    """The shipped rules with every `for:` set to 0s, so alerts fire within seconds in a test."""
    dst.write_text(re.sub(r"^(\s+)for: \S+$", r"\1for: 0s", RULES.read_text(), flags=re.M))
    return dst


class Prometheus:
    def __init__(self, tmp: Path, target: str, **scrape):
        """`scrape`: more of the hakwatch job's scrape configuration (scheme, tls_config, basic_auth)."""
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        config = tmp / "prometheus.yml"
        config.write_text(json.dumps({  # JSON is YAML
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(fast_rules(tmp / "rules.yml"))],
            "scrape_configs": [{"job_name": "hakwatch", "static_configs": [{"targets": [target]}], **scrape}],
        }))
        self.proc = subprocess.Popen(
            ["/usr/bin/prometheus", f"--config.file={config}", f"--storage.tsdb.path={tmp / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}"],
            stdout=subprocess.DEVNULL, stderr=open(tmp / "prometheus.log", "w"))
        wait_for(self._ready, 60, "Prometheus to be ready")

    def _ready(self):
        if self.proc.poll() is not None:
            raise AssertionError(f"prometheus exited {self.proc.returncode}")
        try:
            with urllib.request.urlopen(self.base + "/-/ready", timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    def api(self, path: str, **params):
        url = f"{self.base}/api/v1/{path}?{urllib.parse.urlencode(params)}"
        with urllib.request.urlopen(url, timeout=10) as r:
            body = json.load(r)
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> list:
        return self.api("query", query=expr)["result"]

    def alerts(self, name: str, state: str = "firing") -> list[dict]:
        return [a for a in self.api("alerts")["alerts"] if a["labels"]["alertname"] == name and a["state"] == state]

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def prometheus():
    """prometheus(tmp, target, **scrape): a Prometheus scraping `target`, stopped after the test."""
    started = []

    def start(tmp, target, **scrape):
        started.append(Prometheus(tmp, target, **scrape))
        return started[-1]
    yield start
    for p in started:
        p.stop()


@pytest.fixture(scope="module")
def programs(c_program):
    return {p.stem: c_program(p) for p in PROGRAMS.glob("*.c")}


MEMORY_PATTERNS = ("leak", "swiss", "retain", "steady")


@pytest.fixture(scope="module")
def stack(tmp_path_factory, libhakmem, programs):
    """hakwatch attach --lib, two processes of the same program (one with the SuperSlab LRU disabled,
    so it churns; one with it, so it does not), one process of each memory shape
    (programs/memory_patterns.c), and Prometheus scraping hakwatch with the rules, started once every
    shape is set."""
    if os.geteuid() != 0:
        pytest.skip("the end-to-end suite attaches BPF programs: it needs root")
    tmp = tmp_path_factory.mktemp("e2e")
    h = Hakwatch(["attach", "--lib", str(libhakmem), "--group-by", "pid", "--retention", "600"])
    procs = []
    try:
        h.ready()
        for lru in ("0", "16"):
            env = dict(os.environ, LD_PRELOAD=str(libhakmem), HAKMEM_SS_LRU_SIZE=lru)
            procs.append(subprocess.Popen([programs["superslab_churn"], "600"], env=env))
        env = dict(os.environ, LD_PRELOAD=str(libhakmem))
        shapes = {name: subprocess.Popen([programs["memory_patterns"], name, "600"], env=env,
                                         stdout=subprocess.PIPE, text=True) for name in MEMORY_PATTERNS}
        procs += shapes.values()
        for name, proc in shapes.items():
            assert proc.stdout.readline() == "ready\n", f"memory_patterns {name} did not start"
        prom = Prometheus(tmp, f"127.0.0.1:{h.port}")
        try:
            yield {"prometheus": prom, "churn": procs[0], "quiet": procs[1], "hakwatch": h, "shapes": shapes}
        finally:
            prom.stop()
    finally:
        for p in procs:
            p.kill()
            p.wait()
        h.stop()
