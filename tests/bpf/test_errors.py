"""Wrong input ends with one line on stderr, a non-zero status, no traceback, and nothing left
attached; a normal stop detaches cleanly (the kernel lowers the probe semaphores again)."""

import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest

from hakwatch_helpers import HAKWATCH, free_port, start_known_syscalls, wait_for
from hakwatch.attach.usdt import read_probes

UPROBE_EVENTS = "/sys/kernel/tracing/uprobe_events"
ROOT = Path(__file__).resolve().parents[2]


def run(command, **popen) -> tuple[int, subprocess.CompletedProcess]:
    """subprocess.run(capture_output=True, text=True), and the pid it ran under: its uprobes bear it."""
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen) as proc:
        try:
            out, err = proc.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    return proc.pid, subprocess.CompletedProcess(command, proc.returncode, out, err)


def uprobes_left(pid) -> list[str]:
    """The tracefs uprobes of the hakwatch that ran as `pid` (named hakwatch_{pid}_{n}_{probe}, see
    _attach_usdt): another hakwatch on the host, the packaged service say, has its own."""
    return [line for line in open(UPROBE_EVENTS) if f"/hakwatch_{pid}_" in line]


def hakwatch_fails(*args, command=HAKWATCH, **popen):
    pid, res = run(command + list(args), **popen)
    assert res.returncode != 0, f"{args} succeeded: {res.stdout}"
    assert "Traceback" not in res.stderr, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("hakwatch: "), f"expected one clear line, got:\n{res.stderr}"
    assert not uprobes_left(pid), "a uprobe was left in tracefs"
    return res.stderr


@pytest.fixture
def sleeper():
    proc = subprocess.Popen(["sleep", "60"])
    yield proc.pid
    proc.kill()
    proc.wait()


def test_no_such_pid():
    assert "no process with pid 999999" in hakwatch_fails("attach", "--pid", "999999")


def test_garbage_pid():
    assert "not a process id" in hakwatch_fails("attach", "--pid", "abc")


def test_pid_without_libhakmem(sleeper):
    assert "does not use libhakmem" in hakwatch_fails("attach", "--pid", str(sleeper))


def test_missing_library():
    assert "no such file" in hakwatch_fails("attach", "--lib", "/nonexistent/libhakmem.so")


def test_wrong_library():
    assert "is not libhakmem" in hakwatch_fails("attach", "--lib", "/usr/lib/x86_64-linux-gnu/libc.so.6",
                                                "--listen", f"127.0.0.1:{free_port()}")


def test_not_an_elf_file(tmp_path):
    f = tmp_path / "libhakmem.so"
    f.write_text("not a library")
    assert "not an ELF file" in hakwatch_fails("attach", "--lib", str(f))


def test_garbage_listen(libhakmem):
    assert "expected HOST:PORT" in hakwatch_fails("attach", "--lib", str(libhakmem), "--listen", "nonsense")


def test_port_in_use(libhakmem):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        assert "port is in use" in hakwatch_fails("attach", "--lib", str(libhakmem), "--listen", f"127.0.0.1:{port}")


def hakwatch_fails_as_nobody(*args):
    """hakwatch_fails run by a real unprivileged user. The checkout may be where that user cannot go
    (/root), so this runs a world-readable copy of the package with Debian's python3, whose site
    packages hold click, prometheus-client and pyelftools too (scripts/setup.sh installs them)."""
    copy = Path(tempfile.mkdtemp(prefix="hakwatch-as-nobody-"))
    try:
        for part in ("hakwatch", "probes"):
            shutil.copytree(ROOT / part, copy / part, ignore=shutil.ignore_patterns("__pycache__"))
        for p in [copy, *copy.rglob("*")]:
            p.chmod(0o755 if p.is_dir() else 0o644)
        return hakwatch_fails(*args, user="nobody",
                              command=["/usr/bin/python3", "-c", "from hakwatch.cli import main; main()"],
                              env={"PYTHONPATH": str(copy), "PATH": "/usr/bin:/bin", "PYTHONDONTWRITEBYTECODE": "1"})
    finally:
        shutil.rmtree(copy)


def test_not_root(libhakmem):
    assert "needs root" in hakwatch_fails_as_nobody("attach", "--lib", str(libhakmem))


def test_command_not_found():
    assert "no-such-command" in hakwatch_fails("run", "--listen", f"127.0.0.1:{free_port()}", "--", "no-such-command")


def semaphore(pid, lib, probe="flush"):
    """The probe's semaphore in a live process: load base (from its maps) + the semaphore's address."""
    p = next(p for p in read_probes(lib) if p.name == probe)
    real = os.path.realpath(lib)
    for line in open(f"/proc/{pid}/maps"):
        parts = line.split()
        if len(parts) == 6 and parts[5] == real and int(parts[2], 16) == 0:
            base = int(parts[0].split("-")[0], 16)
            with open(f"/proc/{pid}/mem", "rb") as mem:
                mem.seek(base + p.semaphore_address)
                return int.from_bytes(mem.read(2), "little")
    raise AssertionError(f"{real} not mapped at offset 0 in {pid}")


def test_clean_detach(hakwatch, libhakmem, programs):
    proc = start_known_syscalls(programs["known_syscalls"], libhakmem)
    try:
        assert semaphore(proc.pid, libhakmem) == 0
        h = hakwatch("attach", "--pid", str(proc.pid))
        h.ready()
        assert semaphore(proc.pid, libhakmem) == 1, "the kernel did not raise the semaphore"
        assert h.stop() == 0
        assert semaphore(proc.pid, libhakmem) == 0, "the semaphore stayed raised after hakwatch stopped"
        assert not uprobes_left(h.proc.pid), "a uprobe was left in tracefs"
    finally:
        proc.kill()
        proc.wait()


def test_killed_hakwatch_leaves_nothing_raised(hakwatch, libhakmem, programs):
    """Even SIGKILL: the kernel owns the semaphore and drops it with the probe's file descriptor."""
    proc = start_known_syscalls(programs["known_syscalls"], libhakmem)
    try:
        h = hakwatch("attach", "--pid", str(proc.pid))
        h.ready()
        h.proc.kill()
        h.proc.wait()
        wait_for(lambda: semaphore(proc.pid, libhakmem) == 0, timeout=10, what="the semaphore to drop")
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.parametrize("lives_s", [0.0, 0.4, 0.8, 1.2, 1.6, 2.4])
@pytest.mark.parametrize("command", ["attach", "snapshot", "top"])
def test_a_process_that_exits_while_hakwatch_attaches(libhakmem, lives_s, command):
    """Gone before the pid is checked, while the library is read, while the BPF program compiles, or
    right after the attach: one line or a clean end, never a traceback, nothing left attached."""
    proc = subprocess.Popen(["/bin/sh", "-c", f"sleep {lives_s}"], env=dict(os.environ, LD_PRELOAD=str(libhakmem)))
    args = {"attach": ["attach", "--pid", str(proc.pid), "--retention", "0", "--listen", f"127.0.0.1:{free_port()}"],
            "snapshot": ["snapshot", "--pid", str(proc.pid), "--duration", "1"],
            "top": ["top", "--pid", str(proc.pid), "--interval", "0.5"]}[command]
    try:
        pid, res = run(HAKWATCH + args)
    finally:
        proc.kill()
        proc.wait()
    assert "Traceback" not in res.stderr, res.stderr
    if res.returncode:
        lines = res.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("hakwatch: "), res.stderr
    assert not uprobes_left(pid), "a uprobe was left in tracefs"


def test_an_unreadable_proc_entry_is_one_line():
    """`probes --pid` needs no root for one's own processes; for another user's it says why not."""
    out = hakwatch_fails_as_nobody("probes", "--pid", "1")
    assert "process 1" in out and "permission denied" in out


def test_a_probe_held_without_its_semaphore_by_another_tool_is_one_line(libhakmem, tmp_path):
    """Another tool's uprobe at flush's site without the semaphore: the kernel refuses hakwatch's with it
    (ref_ctr_offset mismatch) and libbcc would fall back to a tracefs uprobe that never fires and
    outlives hakwatch. hakwatch says so in one line and leaves nothing behind."""
    from bcc import BPF

    from hakwatch.attach.bpf import _attach_uprobe, _close_perf_event, _detach_uprobe
    # a copy of the library of its own: were a hakwatch on the host (the packaged one) holding the
    # suite's with the semaphore, the kernel would refuse the other tool's uprobe instead
    lib = tmp_path / "libhakmem.so"
    shutil.copy(libhakmem, lib)
    flush = next(p for p in read_probes(lib) if p.name == "flush")
    other = BPF(text=b"int hit(struct pt_regs *ctx) { return 0; }")
    fd = _attach_uprobe(other.load_func(b"hit", BPF.KPROBE).fd, 0, b"another_tool", str(lib).encode(),
                        flush.offset, -1, 0)
    try:
        assert fd >= 0
        err = hakwatch_fails("attach", "--lib", str(lib), "--listen", f"127.0.0.1:{free_port()}")
        assert "with its semaphore" in err and "ref_ctr_offset mismatch" in err, err
    finally:
        if fd >= 0:
            _close_perf_event(fd)
        _detach_uprobe(b"another_tool")  # a tracefs fallback of libbcc's, if it made one, outlives fd
        other.cleanup()
