"""Every hakmem USDT probe, attached for real by library path with the kernel-managed semaphore,
fires: a BPF program of the test's own counts hits per probe in a process that triggers them all."""

import ctypes as ct
import os
import subprocess

import pytest

BPF = pytest.importorskip("bcc", reason="bcc is not importable (python3-bpfcc, venv with --system-site-packages)").BPF

from hakwatch.attach.bpf import _attach_uprobe, _close_perf_event
from hakwatch.attach.usdt import read_probes

COUNTER = """
BPF_ARRAY(hits, u64, 16);
int hit(struct pt_regs *ctx) {
    int i = 0;
    u64 *n = hits.lookup(&i);
    if (n) __sync_fetch_and_add(n, 1);
    return 0;
}
"""


def test_every_probe_fires(libhakmem, programs):
    probes = [p for p in read_probes(libhakmem) if p.provider == "hakmem"]
    assert {p.name for p in probes} == {"init", "flush", "refill", "ss_map", "ss_unmap", "ss_lru_put",
                                        "ss_lru_hit", "ss_lru_evict", "ss_madvise", "large_map", "large_unmap",
                                        "heap_error", "sample_alloc", "sample_free"}
    loaded, fds = [], []
    try:
        for i, p in enumerate(probes):
            assert p.semaphore_offset, f"probe {p.name} has no semaphore"
            b = BPF(text=COUNTER.encode())
            fn = b.load_func(b"hit", BPF.KPROBE)
            fd = _attach_uprobe(fn.fd, 0, f"hakwatch_test_{i}".encode(), str(libhakmem).encode(), p.offset, -1,
                                p.semaphore_offset)
            assert fd >= 0, f"attaching {p.name}: {os.strerror(ct.get_errno())}"
            loaded.append((p.name, b))
            fds.append(fd)
        env = dict(os.environ, LD_PRELOAD=str(libhakmem), HAKMEM_SS_LRU_SIZE="2", HAKMEM_HEAP_ERRORS="report",
                   HAKMEM_SAMPLE_INTERVAL="4096")  # samples every 4 KiB: some of the blocks it frees are sampled
        subprocess.run([programs["all_events"]], env=env, check=True, timeout=60)
        fired = {name: b[b"hits"][ct.c_int(0)].value for name, b in loaded}
    finally:
        for fd in fds:
            _close_perf_event(fd)
        for _, b in loaded:
            b.cleanup()
    silent = [name for name, n in fired.items() if n == 0]
    assert not silent, f"probes that never fired: {silent} (hits: {fired})"


def test_a_probe_without_its_semaphore_never_fires(libhakmem, programs):
    """The probes are really gated: attached with ref_ctr_offset 0, the semaphore stays 0 and the
    flush probe is skipped by the allocator (which is why hakwatch must pass the semaphore)."""
    flush = next(p for p in read_probes(libhakmem) if p.name == "flush")
    b = BPF(text=COUNTER.encode())
    fd = _attach_uprobe(b.load_func(b"hit", BPF.KPROBE).fd, 0, b"hakwatch_test_nosem", str(libhakmem).encode(),
                        flush.offset, -1, 0)
    try:
        assert fd >= 0
        subprocess.run([programs["all_events"]], env=dict(os.environ, LD_PRELOAD=str(libhakmem), HAKMEM_HEAP_ERRORS="report"),
                       check=True, timeout=60)
        assert b[b"hits"][ct.c_int(0)].value == 0
    finally:
        _close_perf_event(fd)
        b.cleanup()
