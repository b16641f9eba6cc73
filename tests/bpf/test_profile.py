"""`hakwatch profile` against a program of known allocation sites (programs/sites.c, frame pointers):
the alloc profile's estimated bytes per function match what each allocated, the in-use profile drops
a site once it frees, the churn profile names the function SuperSlab unmaps come from, symbols stay
right when the process exits before the profile is written, and go tool pprof reads every profile."""

import gzip
import os
import shutil
import subprocess
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path

import pytest

from hakwatch.profile import profile_pb2
from hakwatch.contract.layout import load
from hakwatch_helpers import HAKWATCH

MIB = 1 << 20
# Samples every 16 KiB on average (the default is 2 MiB), as many a second as that makes (the default
# paces a process to ~500 a second): 300 MiB give ~19,000 samples, so the smallest site's estimate
# (~1,900 samples) is within a few percent.
SAMPLING = {"HAKMEM_SAMPLE_INTERVAL": "16384", "HAKMEM_SAMPLE_MAX_RATE": "0"}


class Sites:
    """programs/sites.c under libhakmem, driven line by line."""

    def __init__(self, program, libhakmem, **env):
        self.proc = subprocess.Popen([program], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                     env=dict(os.environ, LD_PRELOAD=str(libhakmem), **env))
        assert self.proc.stdout.readline() == "ready\n"

    def do(self, command: str):
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        if command != "exit":
            assert self.proc.stdout.readline() == "ok\n", command

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


@pytest.fixture
def sites(programs, libhakmem):
    started = []

    def start(**env):
        s = Sites(programs["sites"], libhakmem, **env)
        started.append(s)
        return s
    yield start
    for s in started:
        s.close()


def profile(pid: int, kind: str, out, *commands, duration=3.0, fmt="pprof"):
    """Runs `hakwatch profile` on pid; once it is attached, runs each of `commands`."""
    proc = subprocess.Popen(HAKWATCH + ["profile", "--pid", str(pid), "--kind", kind, "--duration", str(duration),
                                        "--format", fmt, "-o", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stderr.readline()
    assert "profiling process" in line, line + proc.stderr.read()
    for c in commands:
        c()
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    return err


def read(path) -> list[tuple[list[str], list[int], dict]]:
    """The samples of a pprof file: function names leaf first, values, labels."""
    p = profile_pb2.Profile()
    p.ParseFromString(gzip.decompress(path.read_bytes()))
    s = p.string_table
    names = {f.id: s[f.name] for f in p.function}
    locations = {loc.id: names[loc.line[0].function_id] for loc in p.location}
    return [([locations[i] for i in smp.location_id], list(smp.value), {s[lb.key]: s[lb.str] for lb in smp.label})
            for smp in p.sample]


def by_site(samples, index=1) -> Counter:
    """Values by leaf function: site_a, site_b, site_c, or None for any other."""
    out = Counter()
    for frames, values, _ in samples:
        out[frames[0] if frames[0] in ("site_a", "site_b", "site_c") else None] += values[index]
    return out


def test_alloc_profile_estimates_each_sites_bytes_and_stays_readable_after_exit(sites, tmp_path):
    s = sites(**SAMPLING)
    out = tmp_path / "alloc.pb.gz"
    profile(s.proc.pid, "alloc", out, lambda: s.do("alloc 300"), lambda: s.do("exit"))
    s.proc.wait(10)  # it exited before the profile was written
    got = by_site(read(out))
    for site, share in (("site_a", 0.6), ("site_b", 0.3), ("site_c", 0.1)):
        truth = 300 * MIB * share
        assert abs(got[site] - truth) <= 0.1 * truth, (site, got[site] / MIB, truth / MIB, got)
    assert got[None] <= 0.01 * 300 * MIB, got  # nothing else allocates much


def test_inuse_profile_drops_a_site_that_freed(sites, tmp_path):
    s = sites(**SAMPLING)
    out = tmp_path / "inuse.pb.gz"
    profile(s.proc.pid, "inuse", out, lambda: s.do("keep 100"), lambda: s.do("free b"))
    got = by_site(read(out))
    assert got["site_b"] == 0, got
    assert abs(got["site_a"] - 60 * MIB) <= 6 * MIB and abs(got["site_c"] - 10 * MIB) <= 1 * MIB, got


def test_churn_profile_names_where_superslab_unmaps_come_from(sites, tmp_path):
    s = sites(HAKMEM_SS_LRU_SIZE="0")  # an emptied SuperSlab is unmapped at once
    out = tmp_path / "churn.pb.gz"
    profile(s.proc.pid, "churn", out, lambda: s.do("churn 5"))
    unmaps = Counter()
    for frames, values, labels in read(out):
        if labels.get("event") == "ss_unmap":
            unmaps[frames[0]] += values[0]
    assert set(unmaps) == {"release"}, unmaps  # every unmap, and some (the thread cache keeps a few slabs)
    s = sites(HAKMEM_SS_LRU_SIZE="0")
    folded = tmp_path / "churn.folded"
    profile(s.proc.pid, "churn", folded, lambda: s.do("churn 5"), fmt="folded")
    lines = folded.read_text().splitlines()
    assert any(line.startswith("ss_unmap;") and ";churn;release " in line for line in lines), lines


@pytest.mark.skipif(not shutil.which("go"), reason="go tool pprof needs Debian's golang-go (make setup)")
def test_go_tool_pprof_reads_every_kind(sites, tmp_path):
    s = sites(**SAMPLING, HAKMEM_SS_LRU_SIZE="0")
    for kind, command in (("alloc", "alloc 50"), ("inuse", "keep 20"), ("churn", "churn 2")):
        out = tmp_path / f"{kind}.pb.gz"
        profile(s.proc.pid, kind, out, lambda: s.do(command), duration=1.5)
        top = subprocess.run(["go", "tool", "pprof", "-top", str(out)], capture_output=True, text=True,
                             env=dict(os.environ, HOME=str(tmp_path)), timeout=60)
        assert top.returncode == 0, top.stderr
        want = "release" if kind == "churn" else "site_a"
        assert want in top.stdout, (kind, top.stdout)


def test_run_serves_the_profiles_of_what_it_watches(hakwatch, programs, libhakmem, tmp_path):
    """`run --profile`: /debug/pprof/allocs, heap and churn on the metrics server (unprivileged, its
    symbols from the root helper), every process or ?pid=PID."""
    h = hakwatch("run", "--profile", "--lib", str(libhakmem), "--", str(programs["sites"]), stdin=subprocess.PIPE,
                 env=dict(os.environ, **SAMPLING))
    h.ready()
    assert h.proc.stdout.readline() == "ready\n"
    h.proc.stdin.write("alloc 100\nkeep 10\n")
    h.proc.stdin.flush()
    assert h.proc.stdout.readline() == "ok\n" and h.proc.stdout.readline() == "ok\n"
    base = h.url.removesuffix("/metrics")
    allocs = tmp_path / "allocs.pb.gz"
    allocs.write_bytes(urllib.request.urlopen(base + "/debug/pprof/allocs", timeout=30).read())
    got = by_site(read(allocs))
    assert got["site_a"] > got["site_b"] > got["site_c"] > 0, got
    pids = {labels["pid"] for _, _, labels in read(allocs)}
    assert len(pids) == 1
    heap = tmp_path / "heap.pb.gz"
    heap.write_bytes(urllib.request.urlopen(f"{base}/debug/pprof/heap?pid={pids.pop()}", timeout=30).read())
    assert abs(sum(by_site(read(heap)).values()) - 10 * MIB) <= 2 * MIB
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(base + "/debug/pprof/heap?pid=1", timeout=30)
    assert e.value.code == 404
    h.proc.stdin.write("exit\n")
    h.proc.stdin.flush()
    assert h.proc.wait(30) == 0


def test_a_forgotten_process_leaves_no_sites_samples_or_stacks(sites, libhakmem):
    """Expiry (--retention) deletes a profiled process's sites and live samples, and the stacks no
    other process refers to: a long `attach --profile` does not fill its maps; a process still
    watched keeps all of its own."""
    from hakwatch.attach.bpf import Probes
    from hakwatch.read.reader import Reader

    with Probes(str(libhakmem), follow_init=True, profile=True) as probes:
        gone, kept = sites(**SAMPLING), sites(**SAMPLING)
        for s in (gone, kept):
            s.do("keep 20")
        gone.do("exit")
        gone.proc.wait(10)
        pids = {k.pid for k in probes.table("sites").keys()}
        assert {gone.proc.pid, kept.proc.pid} <= pids
        Reader(probes, retention_s=0).expire()
        left = list(probes.table("sites").keys())
        assert {k.pid for k in left} == {kept.proc.pid} and {k.pid for k in probes.table("live").keys()} == {kept.proc.pid}
        stacks = probes.table("stacks")
        assert all(list(stacks.walk(k.stack)) for k in left if k.stack >= 0)  # none of its stacks went
        # the stacks left are exactly those still referred to (load().stack_lost, no stack taken, is no key)
        referred = {k.stack for k in left} | {v.stack for v in probes.table("live").values()}
        assert len(list(stacks.keys())) == len(referred - {load().stack_lost})


@pytest.mark.parametrize("kind", ["double_free_cache", "double_free_large"])
def test_a_sampled_block_freed_twice_is_a_double_free(libhakmem, c_program, kind):
    """While samples are taken (something attached to sample_alloc), every block sampled: a second free
    of one is reported as a double free, like any other block's."""
    from bcc import BPF

    from hakwatch.attach.bpf import _attach_uprobe, _close_perf_event
    from hakwatch.attach.usdt import read_probes
    misuse = c_program(Path(__file__).parents[1] / "allocator" / "programs" / "misuse.c")
    site = next(p for p in read_probes(libhakmem) if p.name == "sample_alloc")
    taker = BPF(text=b"int hit(struct pt_regs *ctx) { return 0; }")
    fd = _attach_uprobe(taker.load_func(b"hit", BPF.KPROBE).fd, 0, b"hakwatch_test_sampler", str(libhakmem).encode(),
                        site.offset, -1, site.semaphore_offset)
    assert fd >= 0
    try:
        res = subprocess.run([misuse, kind], capture_output=True, text=True, timeout=30,
                             env=dict(os.environ, LD_PRELOAD=str(libhakmem), HAKMEM_SAMPLE_INTERVAL="1",
                                      HAKMEM_SAMPLE_MAX_RATE="0"))
    finally:
        _close_perf_event(fd)
        taker.cleanup()
    assert res.returncode == -6 and "free(): double free" in res.stderr, (res.returncode, res.stderr)
