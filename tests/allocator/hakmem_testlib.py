"""Helpers of the allocator suite: run a program with or without libhakmem preloaded, read and check
HAKMEM_STATS files (schema in libhakmem/STATS.md), size classes and names from probes/hakmem_counters.h
as hakwatch reads it (hakwatch/contract/layout.py).

Imported by the test modules of tests/allocator/ (pytest puts this folder on sys.path)."""

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest
from hakwatch.read.layers import memory
from hakwatch.contract.layout import load, plain, words

ROOT = Path(__file__).resolve().parents[2]
PROGRAMS = Path(__file__).resolve().parent / "programs"
LAYOUT = load()
CLASS_SIZES = LAYOUT.class_sizes
SUPERSLAB_HEADER_BYTES = LAYOUT.superslab_header_bytes


def class_of(size):
    """Block size of the class serving a request of `size` bytes, or None for a large block."""
    for c in CLASS_SIZES:
        if size <= c:
            return c
    return None


def _show(data, limit=6000):
    if data is None:
        return ""
    if isinstance(data, bytes):
        data = data.decode(errors="replace")
    return data if len(data) <= limit else data[:limit] + f"\n... ({len(data) - limit} more chars)"


def describe_status(rc):
    if rc is None:
        return "did not finish"
    if rc < 0:
        try:
            return f"killed by signal {signal.Signals(-rc).name}"
        except ValueError:
            return f"killed by signal {-rc}"
    return f"exit status {rc}"


class Result:
    def __init__(self, argv, returncode, stdout, stderr, preload):
        self.argv = argv
        self.returncode = returncode
        self.stdout_bytes = stdout
        self.stderr_bytes = stderr
        self.preload = preload

    @property
    def stdout(self):
        return self.stdout_bytes.decode(errors="replace")

    @property
    def stderr(self):
        return self.stderr_bytes.decode(errors="replace")

    def report(self):
        return (
            f"command: {' '.join(map(str, self.argv))}  (libhakmem preloaded: {self.preload})\n"
            f"{describe_status(self.returncode)}\n"
            f"--- stderr ---\n{_show(self.stderr_bytes)}\n--- stdout ---\n{_show(self.stdout_bytes)}"
        )


class Hak:
    """Runs programs with libhakmem preloaded (or not, for the reference run)."""

    def __init__(self, lib):
        self.lib = Path(lib)

    def env(self, preload=True, stats=None, extra=None, base=None):
        env = dict(os.environ if base is None else base)
        for k in list(env):
            if k.startswith("HAKMEM_") or k in ("LD_PRELOAD", "MALLOC_CHECK_", "MALLOC_PERTURB_"):
                del env[k]
        if preload:
            env["LD_PRELOAD"] = str(self.lib)
        if stats is not None:
            env["HAKMEM_STATS"] = str(stats)
        env.update(extra or {})
        return env

    def run(self, argv, preload=True, stats=None, env=None, timeout=60, check=True, input=None,
            cwd=None):
        """Run argv; on a timeout kill its whole process group and fail. With check, fail unless it
        exited 0, showing its stderr and stdout."""
        argv = [str(a) for a in argv]
        full_env = self.env(preload=preload, stats=stats, extra=env)
        proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=full_env, cwd=cwd,
            start_new_session=True,
        )
        try:
            out, err = proc.communicate(
                input=input.encode() if isinstance(input, str) else input, timeout=timeout)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            out, err = proc.communicate()
            res = Result(argv, None, out, err, preload)
            pytest.fail(f"timed out after {timeout}s (hang or deadlock?)\n{res.report()}",
                        pytrace=False)
        res = Result(argv, proc.returncode, out, err, preload)
        if check and res.returncode != 0:
            pytest.fail(f"program failed\n{res.report()}", pytrace=False)
        return res

    def same_output(self, argv, timeout=60, env=None, cwd=None, input=None, cwd_factory=None):
        """Run argv without and with libhakmem; both must exit 0; return (reference, preloaded)."""
        ref = self.run(argv, preload=False, timeout=timeout, env=env, cwd=cwd, input=input)
        got = self.run(argv, preload=True, timeout=timeout, env=env, cwd=cwd, input=input)
        return ref, got


def load_stats(path):
    path = Path(path)
    assert path.exists(), f"HAKMEM_STATS file {path} was not written"
    text = path.read_text()
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        pytest.fail(f"HAKMEM_STATS file {path} is not valid JSON ({e}):\n{_show(text)}",
                    pytrace=False)


def _is_count(v):
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def check_stats_schema(s, pid=None):
    """Every rule of libhakmem/STATS.md that can be checked on one file. Returns s."""
    assert isinstance(s, dict), f"stats is not a JSON object: {s!r}"
    assert s.get("schema") == load().stats_schema, f"schema key: {s.get('schema')!r}"
    assert isinstance(s.get("pid"), int) and s["pid"] > 0, f"pid: {s.get('pid')!r}"
    if pid is not None:
        assert s["pid"] == pid, f"stats pid {s['pid']} != process pid {pid}"
    assert isinstance(s.get("version"), str) and s["version"], f"version: {s.get('version')!r}"
    for key in ("allocs", "frees", "refills", "refill_objects", "superslab_events",
                "large_events", "heap_errors", "syscalls", "bytes", "live_bytes", "superslabs", "memory"):
        assert isinstance(s.get(key), dict), f"{key!r} missing or not an object: {s.get(key)!r}"
    class_keys = {str(c) for c in CLASS_SIZES}

    # allocs: classes (nonzero only) and large blocks
    for k, v in s["allocs"].items():
        assert k in class_keys or k == load().large_slot, f"allocs has unknown key {k!r}"
        assert _is_count(v), f"allocs[{k!r}] = {v!r} is not a count"
        assert v > 0, f"allocs[{k!r}] is zero but classes are listed only when nonzero"
    # frees: fixed names, every one present
    assert set(s["frees"]) == set(LAYOUT.routes), f"frees keys {sorted(s['frees'])} != {sorted(LAYOUT.routes)}"
    for k, v in s["frees"].items():
        assert _is_count(v), f"frees[{k!r}] = {v!r}"
    # refills: class -> every stage
    for k, stages in s["refills"].items():
        assert k in class_keys, f"refills has unknown class {k!r}"
        assert isinstance(stages, dict) and set(stages) == set(LAYOUT.stages), \
            f"refills[{k!r}] keys {sorted(stages) if isinstance(stages, dict) else stages!r} != {sorted(LAYOUT.stages)}"
        for st, v in stages.items():
            assert _is_count(v), f"refills[{k!r}][{st!r}] = {v!r}"
        assert sum(stages.values()) > 0, f"refills[{k!r}] is all zero but listed"
    for k, v in s["refill_objects"].items():
        assert k in class_keys, f"refill_objects has unknown class {k!r}"
        assert _is_count(v) and v > 0, f"refill_objects[{k!r}] = {v!r}"
        n_refills = sum(s["refills"].get(k, {}).values())
        assert v >= n_refills, f"class {k}: {n_refills} refills brought only {v} objects"
    for k in s["refills"]:
        assert k in s["refill_objects"], f"class {k} has refills but no refill_objects"
    assert set(s["superslab_events"]) == set(LAYOUT.ss_events), \
        f"superslab_events keys {sorted(s['superslab_events'])} != {sorted(LAYOUT.ss_events)}"
    assert set(s["large_events"]) == set(LAYOUT.large_events), \
        f"large_events keys {sorted(s['large_events'])}"
    assert set(s["heap_errors"]) == set(LAYOUT.heap_errors), f"heap_errors keys {sorted(s['heap_errors'])}"
    for grp in ("superslab_events", "large_events", "heap_errors"):
        for k, v in s[grp].items():
            assert _is_count(v), f"{grp}[{k!r}] = {v!r}"
    assert set(s["syscalls"]) == set(LAYOUT.os_calls), f"syscalls keys {sorted(s['syscalls'])} != {LAYOUT.os_calls}"
    for k, v in s["syscalls"].items():
        assert isinstance(v, dict) and set(v) == {"calls", "bytes"}, f"syscalls[{k!r}] = {v!r}"
        assert _is_count(v["calls"]) and _is_count(v["bytes"]), f"syscalls[{k!r}] = {v!r}"
        if v["calls"] == 0:
            assert v["bytes"] == 0, f"syscalls[{k!r}]: bytes without calls: {v!r}"
    # The SuperSlab gauges are the file's events as hakwatch works them out (STATS.md), never negative.
    ev = s["superslab_events"]
    assert ev["unmap"] >= ev["lru_evict"], f"evictions are unmaps too: {ev}"
    gauges = superslabs_of_events(ev)
    assert s["superslabs"] == gauges, f"superslabs {s['superslabs']}, from the events {gauges}: {ev}"
    assert gauges["live"] >= 0 and 0 <= gauges["purged"] <= gauges["cached"], gauges
    check_memory(s)
    return s


def superslabs_of_events(ev):
    """SuperSlabs by state from the SuperSlab events alone, by hakwatch's arithmetic (hakwatch/read/layers.py)
    on a counters block holding nothing else."""
    c = plain([0] * words(LAYOUT), LAYOUT)
    c.ss_events = [ev[name] for name in LAYOUT.ss_events]
    return memory(LAYOUT, c).superslabs


def check_memory(s):
    """Byte accounting (STATS.md): live bytes by class are whole blocks, and at exit every layer is
    a size and the layers add up to what the allocator's own syscalls left mapped."""
    for k, v in s["live_bytes"].items():
        assert k in {str(c) for c in CLASS_SIZES} or k == load().large_slot, f"live_bytes has unknown key {k!r}"
        assert isinstance(v, int) and v != 0, f"live_bytes[{k!r}] = {v!r}: classes are listed only when nonzero"
        assert v > 0, f"live_bytes[{k!r}] = {v}: more freed than handed out"
        if k != load().large_slot:
            assert v % int(k) == 0, f"live_bytes[{k!r}] = {v} is not whole blocks"
    b = s["bytes"]
    assert _is_count(b["requested"]) and _is_count(b["allocated"]), b
    assert b["requested"] <= b["allocated"], f"handed out less than asked for: {b}"
    m = s["memory"]
    assert set(m["layers"]) == set(LAYOUT.layers), f"layers {sorted(m['layers'])} != {sorted(LAYOUT.layers)}"
    negative = {k: v for k, v in m["layers"].items() if v < 0}
    assert not negative, f"negative layers at exit: {negative}"
    sc = s["syscalls"]
    assert m["mapped"] == sc["mmap"]["bytes"] - sc["munmap"]["bytes"], m
    assert sum(m["layers"].values()) == m["mapped"], \
        f"layers add up to {sum(m['layers'].values())}, mapped is {m['mapped']}: {m['layers']}"
    assert m["layers"]["live"] == sum(s["live_bytes"].values()), (m["layers"]["live"], s["live_bytes"])
    assert 0 <= m["resident_estimate"] <= m["mapped"], m


def check_syscalls_plausible(s):
    """The allocator's own syscall counts must cover the mapping events it reports."""
    ev, le, sc = s["superslab_events"], s["large_events"], s["syscalls"]
    batches = -(-ev["map"] // 4)  # SuperSlabs are mapped four at a time
    assert sc["mmap"]["calls"] >= batches + le["map"], \
        f"mmap calls {sc['mmap']['calls']} < {batches} SuperSlab batches ({ev['map']} maps) + large maps {le['map']}"
    assert sc["mmap"]["bytes"] >= ev["map"] * 2 * 1024 * 1024, \
        f"mmap bytes {sc['mmap']['bytes']} < {ev['map']} SuperSlabs of 2 MiB"
    assert sc["munmap"]["calls"] >= ev["unmap"] + le["unmap"], \
        f"munmap calls {sc['munmap']['calls']} < SuperSlab unmaps {ev['unmap']} + large unmaps {le['unmap']}"
    assert sc["madvise"]["calls"] >= ev["madvise"], \
        f"madvise calls {sc['madvise']['calls']} < SuperSlab madvise events {ev['madvise']}"
