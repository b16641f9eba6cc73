"""Processes in chroots and containers, real BPF, no container runtime (unshare, chroot, pivot_root):
attach --pid with the host's pid gives totals equal to the HAKMEM_STATS the process writes inside its
root, for a chroot on an overlay mount, a chroot in its own mount namespace and a pivot_root container
with its own PID namespace; attach --all picks up a containerised process, with its own copy of the
library, started after it; a library deleted or replaced on disk while mapped is still watched."""

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from hakwatch_helpers import scrape, wait_for
from test_memory import ALLOCATOR_TESTS, stats_view, view

LIB_INSIDE = "/opt/libhakmem.so"


@pytest.fixture(scope="module")
def alloc_live(c_program):
    return c_program(ALLOCATOR_TESTS / "programs" / "alloc_live.c", "-fno-builtin")


def shared_objects(binary) -> list[str]:
    """The absolute paths ldd names: libraries and the program interpreter."""
    out = subprocess.run(["ldd", str(binary)], capture_output=True, text=True, check=True).stdout
    return [w for line in out.splitlines() for w in line.split() if w.startswith("/")]


@pytest.fixture
def root(tmp_path, alloc_live, libhakmem):
    """A root with the program (/prog), its libraries and a copy of libhakmem at /opt, as an overlay
    mount (lower: the files, upper: what the process writes), like a container's. On a tmpfs of its
    own: an overlay's upper layer cannot be on an overlay, which /tmp may be (in a container)."""
    fs = tmp_path / "fs"
    fs.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256m", "tmpfs", str(fs)], check=True)
    try:
        lower, upper, work, merged = (fs / d for d in ("lower", "upper", "work", "merged"))
        for so in set(shared_objects(alloc_live) + shared_objects(libhakmem)):
            dst = lower / so.lstrip("/")
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(so, dst)
        shutil.copy2(alloc_live, lower / "prog")
        (lower / "opt").mkdir()
        shutil.copy2(libhakmem, lower / LIB_INSIDE.lstrip("/"))
        for d in (upper, work, merged):
            d.mkdir()
        subprocess.run(["mount", "-t", "overlay", "overlay", "-o",
                        f"lowerdir={lower},upperdir={upper},workdir={work}", str(merged)], check=True)
        yield merged
        subprocess.run(["umount", "-l", str(merged)], check=True)
    finally:
        subprocess.run(["umount", "-l", str(fs)], check=True)


ENV = {"LD_PRELOAD": LIB_INSIDE, "HAKMEM_STATS": "/stats.json", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
PROG = ["/prog", "hold", "2", "wait", "thread"]


def start(argv):
    return subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=ENV)


def chroot(root):
    return start(["chroot", str(root), *PROG])


def chroot_in_own_mount_namespace(root):
    return start(["unshare", "--mount", "chroot", str(root), *PROG])


def pivot_root_container(root):
    """Its own mount and PID namespaces; the root pivoted, so /proc/PID/maps prints container paths."""
    script = 'mount --make-rprivate / && mount --bind "$0" "$0" && cd "$0" && mkdir -p .old && ' \
             f'pivot_root . .old && exec {" ".join(PROG)}'
    return start(["unshare", "--mount", "--pid", "--fork", "/bin/sh", "-c", script, str(root)])


def children(pid) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def host_pid_of_prog(proc) -> int:
    """The program's pid as the host sees it: `unshare --fork` runs it in a child."""
    if "--fork" not in proc.args:
        return proc.pid
    return wait_for(lambda: (kids := children(proc.pid)) and kids[0], timeout=10, what="the container's process")


def watch_to_exit(hakwatch, proc, pid, root):
    """attach --pid, let the program exit, compare hakwatch's final values with its HAKMEM_STATS."""
    h = hakwatch("attach", "--pid", str(pid), "--retention", "300")
    first = wait_for(lambda: (t := scrape(h.url)) and f'pid="{pid}"' in t and "hakmem_mapped_bytes" in t and t,
                     what="the first scrape")
    proc.communicate("go\n", timeout=60)
    assert proc.returncode == 0
    last = wait_for(lambda: (t := scrape(h.url)) and "hakwatch_targets 1" in t and t, what="the final values")
    own = stats_view(json.loads((root / "stats.json").read_text()))
    assert view(last, str(pid)) == own
    assert view(first, str(pid)) == own, "the program did nothing after 'ready'"
    h.stop()
    assert "Traceback" not in h.proc.stderr.read()


@pytest.mark.parametrize("launch", [chroot, chroot_in_own_mount_namespace, pivot_root_container])
def test_attach_pid_to_a_process_in_a_root_of_its_own(hakwatch, root, launch):
    proc = launch(root)
    try:
        assert proc.stdout.readline() == "ready\n"
        pid = host_pid_of_prog(proc)
        watch_to_exit(hakwatch, proc, pid, root)
    finally:
        proc.kill()
        proc.wait()


def test_attach_all_picks_up_a_container_started_after_it(hakwatch, root):
    """The container's library is a copy of its own (another inode), which hakwatch has never seen."""
    h = hakwatch("attach", "--all", "--retention", "300")
    h.ready()
    proc = pivot_root_container(root)
    try:
        assert proc.stdout.readline() == "ready\n"
        pid = host_pid_of_prog(proc)
        wait_for(lambda: f'pid="{pid}"' in (scrape(h.url) or ""), timeout=30, what="hakwatch --all to find it")
        proc.communicate("go\n", timeout=60)
        assert proc.returncode == 0
        last = wait_for(lambda: (t := scrape(h.url)) and 'comm="prog"' in t and t, what="the final values")
        assert view(last, str(pid)) == stats_view(json.loads((root / "stats.json").read_text()))
    finally:
        proc.kill()
        proc.wait()
    h.stop()
    log = h.proc.stderr.read()
    assert f"{LIB_INSIDE} (first seen in pid {pid}, prog): attached" in log, log
    assert "Traceback" not in log


@pytest.mark.parametrize("change", ["deleted", "replaced"])
def test_a_library_changed_on_disk_while_mapped_is_still_watched(hakwatch, alloc_live, libhakmem, tmp_path, change):
    copy, stats = tmp_path / "libhakmem-copy.so", tmp_path / "own.json"
    shutil.copy2(libhakmem, copy)
    proc = subprocess.Popen([alloc_live, "hold", "2", "wait"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                            env=dict(os.environ, LD_PRELOAD=str(copy), HAKMEM_STATS=str(stats)))
    try:
        assert proc.stdout.readline() == "ready\n"
        if change == "deleted":
            copy.unlink()
        else:
            other = tmp_path / "other.so"
            shutil.copy2("/bin/true", other)
            other.rename(copy)
        h = hakwatch("attach", "--pid", str(proc.pid), "--retention", "300")
        wait_for(lambda: f'pid="{proc.pid}"' in (scrape(h.url) or ""), what="the first scrape")
        proc.communicate("go\n", timeout=60)
        last = wait_for(lambda: (t := scrape(h.url)) and "hakwatch_targets 1" in t and t, what="the final values")
        assert view(last, str(proc.pid)) == stats_view(json.loads(stats.read_text()))
    finally:
        proc.kill()
        proc.wait()
