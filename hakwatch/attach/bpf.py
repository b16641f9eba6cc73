"""Load probes/hakwatch.bpf.c with bcc and attach it: the hakmem USDT probes by library path with the
kernel-managed semaphore (uprobe PMU `ref_ctr_offset`), the syscall, process and page-fault
tracepoints (bcc attaches TRACEPOINT_PROBE functions by itself).

Why not bcc's USDT class: it raises semaphores by writing /proc/PID/mem, needs the process to exist
and leaves them raised if hakwatch dies. With ref_ctr_offset the kernel raises the semaphore in every
process mapping the library, now or later, and lowers it when the probe's fd is closed.
"""

import contextlib
import ctypes as ct
import errno
import os
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from functools import partial

from hakwatch.errors import HakwatchError
from hakwatch.contract.layout import PROBES_DIR, map_ctype, totals_ctype
from hakwatch.attach.library import read_totals
from hakwatch.contract.provider import argument_counts
from hakwatch.attach.targets import alive
from hakwatch.attach.usdt import argument_expressions, read_probes

BPF_SOURCE = PROBES_DIR / "hakwatch.bpf.c"
# The allocator's counts, SuperSlab and large-block events included, all come through `flush`; the
# per-event probes are there for bpftrace and for stacks.
HAKMEM_PROBES = ("init", "flush")
# Profiles (hakwatch/profile/profiles.py): allocation samples and the slow-path events, each with its stack.
# sample_free first: a sample freed between the two attaches would stay in `live` for ever.
PROFILE_PROBES = ("sample_free", "sample_alloc", "ss_map", "ss_unmap", "ss_lru_evict", "ss_madvise",
                  "large_map", "large_unmap")
# The probes the BPF program has a function for, each compiled with ARG_<probe>_<n> macros reading its
# arguments (how many: probes/hakmem.d); with no library (--check), 0s, which nothing attached runs.
COMPILED_PROBES = HAKMEM_PROBES + ("refill",) + PROFILE_PROBES
# Distinct stacks (and stack-event pairs) a profile keeps (127 frames each: 8 MiB of kernel memory),
# and sampled blocks not freed yet (a 2 MiB interval: an 8 GiB heap's worth at most).
STACK_ENTRIES = 8192
LIVE_SAMPLES = 4096
# Memory syscalls stacked a second per process, about, at most (each drawn at random and counted for the
# calls it stands for): larson's 5,700 thread exits a second, each a glibc madvise, cost 1% of its CPU
# when every one was stacked.
SYSCALL_STACKS_PER_S = 500
BPF_NOEXIST = 1
# The maps whose fields Python reads: their key and value structs (probes/hakwatch_maps.h).
MAP_STRUCTS = {"targets": (ct.c_uint32, "target"), "syscalls": ("sc_key", "sc_val"),
               "refill_ns": ("refill_key", "refill_val"), "sites": ("site_key", "site_val"),
               "live": ("live_key", "live_val")}

# libbcc's bpf_attach_uprobe takes a 7th argument, ref_ctr_offset, that bcc's Python wrapper does not
# declare; a handle of our own keeps bcc's declaration untouched for bcc's own callers.
_libbcc = ct.CDLL("libbcc.so.0", use_errno=True)
_attach_uprobe = _libbcc.bpf_attach_uprobe
_attach_uprobe.restype = ct.c_int
_attach_uprobe.argtypes = [ct.c_int, ct.c_int, ct.c_char_p, ct.c_char_p, ct.c_ulonglong, ct.c_int, ct.c_uint32]
_libc = ct.CDLL(None)
_close_perf_event = _libbcc.bpf_close_perf_event_fd
_close_perf_event.restype = ct.c_int
_close_perf_event.argtypes = [ct.c_int]
_detach_uprobe = _libbcc.bpf_detach_uprobe
_detach_uprobe.restype = ct.c_int
_detach_uprobe.argtypes = [ct.c_char_p]
UPROBE_EVENTS = "/sys/kernel/tracing/uprobe_events"


def _in_tracefs(ev_name: bytes) -> bool:
    """Whether libbcc made the uprobe through tracefs: it does when the kernel refuses the perf PMU's,
    and a tracefs uprobe has no semaphore and outlives its descriptor."""
    try:
        with open(UPROBE_EVENTS, "rb") as f:
            return b"/" + ev_name in f.read()
    except OSError:
        return False


@contextlib.contextmanager
def _quiet_stderr():
    """File descriptor 2 on /dev/null for a call into C that writes there."""
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _import_bcc():
    try:
        from bcc import BPF
    except ImportError:
        raise HakwatchError("bcc's Python module is missing: apt install python3-bpfcc, and use a "
                            "virtual environment made with --system-site-packages (hakwatch doctor)") from None
    return BPF


def hakmem_sites(lib: str, name: str | None = None) -> dict:
    """The hakmem probes of a library file by name, checked to be ones hakwatch can attach. `name` is
    the library as messages call it (default: `lib`)."""
    name = name or lib
    sites = [p for p in read_probes(lib) if p.provider == "hakmem"]
    found = {p.name: p for p in sites}
    for probe, n in Counter(p.name for p in sites).items():
        if n > 1:  # each probe has one BPF function, made for one site's argument registers
            raise HakwatchError(f"{name}: probe hakmem:{probe} has {n} sites; hakwatch attaches "
                                "libhakmem's probes at exactly one site each")
    flush = found.get("flush")
    if flush is not None and len(flush.arguments.split()) != argument_counts()["flush"]:
        raise HakwatchError(f"{name} is a libhakmem older than this hakwatch (its flush probe hands "
                            "over no totals): rebuild it with `make -C libhakmem`")
    missing = [n for n in HAKMEM_PROBES if n not in found]
    if missing:
        raise HakwatchError(f"{name} is not libhakmem: no hakmem USDT probe "
                            f"{', '.join(missing[:3])}{'...' if len(missing) > 3 else ''}")
    return found


class Probes:
    """The loaded BPF program and everything attached. Close it (or use `with`) to detach."""

    def __init__(self, lib: str | None, *, max_targets: int = 1024, follow_init: bool = False,
                 follow_fork: bool = False, detail_refill: bool = False, watch_execs: bool = False,
                 profile: bool = False):
        if os.geteuid() != 0:
            raise HakwatchError("loading BPF programs needs root: run hakwatch with sudo")
        BPF = _import_bcc()
        # not resolved: /proc/PID/map_files/... must stay the link the kernel follows to the mapped file
        self.lib = os.path.abspath(lib) if lib else None
        found = hakmem_sites(self.lib, lib) if self.lib else {}
        self.profile = profile
        self.names = HAKMEM_PROBES + (("refill",) if detail_refill else ()) + (PROFILE_PROBES if profile else ())
        missing = [n for n in self.names if found and n not in found]
        if missing:
            raise HakwatchError(f"{lib} has no probe {', '.join(missing)}: a libhakmem older than this hakwatch "
                                "(rebuild it with `make -C libhakmem`)")
        # the argument registers the BPF functions were compiled for: another file must have the same
        self.arguments = {n: found[n].arguments for n in self.names} if found else {}
        cflags = [f"-I{PROBES_DIR}", f"-DMAX_TARGETS={max_targets}",
                  f"-DFOLLOW_INIT={int(follow_init)}", f"-DFOLLOW_FORK={int(follow_fork)}",
                  f"-DWATCH_EXECS={int(watch_execs)}", f"-DPROFILE={int(profile)}",
                  f"-DSTACK_ENTRIES={STACK_ENTRIES}", f"-DLIVE_SAMPLES={LIVE_SAMPLES}",
                  f"-DSYSCALL_STACKS_PER_S={SYSCALL_STACKS_PER_S}", "-Wno-unused-function"]
        counts = argument_counts()
        for name in COMPILED_PROBES:
            exprs = argument_expressions(found[name].arguments) if name in found else ["0"] * counts[name]
            cflags += [f"-DARG_{name}_{i}={e}" for i, e in enumerate(exprs)]
        try:
            self.bpf = BPF(src_file=str(BPF_SOURCE).encode(), cflags=cflags)
        except Exception as e:  # bcc raises bare Exceptions for compile and load failures
            raise HakwatchError(f"could not load the BPF program ({e}); run `hakwatch doctor`") from None
        self._fds: list[int] = []
        try:
            for name in self.names if self.lib else ():
                self._attach_usdt(found[name])
        except BaseException:
            self.close()
            raise
        # The maps' types now, as root: after the privilege drop a checkout under /root is out of reach.
        for key, leaf in MAP_STRUCTS.values():
            map_ctype(leaf)
            if isinstance(key, str):
                map_ctype(key)
        # clang's compile left ~27 MiB of freed heap that glibc keeps; hakwatch runs for weeks
        _libc.malloc_trim(0)

    def attach_library(self, lib: str, name: str) -> str | None:
        """Attach to one more copy of libhakmem (attach --all); `name` is the file as people see it.
        Returns why not, when its probes pass their arguments in other registers than the first copy's
        (another build: its own hakwatch can watch it)."""
        found = hakmem_sites(lib, name)
        differ = [n for n in self.names if n not in found or found[n].arguments != self.arguments[n]]
        if differ:
            return f"its probes {', '.join(differ)} are missing or take their arguments in other registers (another build)"
        before = len(self._fds)
        try:
            for n in self.names:
                self._attach_usdt(found[n])
        except BaseException:  # all of its probes or none: init without flush would add targets never counted
            for fd in self._fds[before:]:
                _close_perf_event(fd)
            del self._fds[before:]
            raise
        return None

    def _attach_usdt(self, probe):
        fn = self.bpf.load_func(f"on_{probe.name}".encode(), self.bpf.KPROBE)
        ev_name = f"hakwatch_{os.getpid()}_{len(self._fds)}_{probe.name}".encode()
        with _quiet_stderr():  # libbcc prints its own line on failure; ours below says more
            fd = _attach_uprobe(fn.fd, 0, ev_name, probe.path.encode(), probe.offset, -1, probe.semaphore_offset)
            err = ct.get_errno()
        if fd < 0:
            if err in (errno.ESRCH, errno.ENOENT) and probe.path.startswith("/proc/"):
                pid = probe.path.split("/")[2]
                raise HakwatchError(f"process {pid} exited while hakwatch attached to it")
            raise HakwatchError(f"could not attach probe hakmem:{probe.name} in {probe.path}: "
                                f"{os.strerror(err) if err else 'error ' + str(fd)}")
        if _in_tracefs(ev_name):
            # The kernel refused the semaphore (dmesg: "ref_ctr_offset mismatch"): another tool holds a
            # uprobe at this site without it, and libbcc fell back to one that would never fire.
            _close_perf_event(fd)
            with _quiet_stderr():
                _detach_uprobe(ev_name)
            raise HakwatchError(f"could not attach probe hakmem:{probe.name} in {probe.path} with its semaphore: "
                                "another tool has a uprobe at that site without it (dmesg says \"ref_ctr_offset "
                                f"mismatch\"; look for it in {UPROBE_EVENTS}); detach that one first")
        self._fds.append(fd)

    def watching(self, pid: int) -> bool:
        try:
            self.table("targets")[ct.c_uint32(pid)]
            return True
        except KeyError:
            return False

    def add_target(self, pid: int, comm: str):
        """Watch a process from user space (attach --pid, run's command before it execs)."""
        targets = self.table("targets")
        t = targets.Leaf()
        t.comm = comm.encode()[:15]
        try:
            targets[ct.c_uint32(pid)] = t
        except Exception:  # bcc's bare Exception: the map is full
            raise HakwatchError(f"cannot watch process {pid}: {len(targets)} processes are watched "
                                "already (--max-targets)") from None

    def watch_running(self, mapping, comm: str) -> bool:
        """Watch a process that is already running (attach --pid, --lib, --all, top, snapshot), given
        its mapping of the library (targets.Mapping): its entry starts from the totals in its memory,
        read after the probes are attached (DESIGN.md). False if it exited before it was watched (its
        exit went by unseen, so it is not kept as a target)."""
        targets, key = self.table("targets"), ct.c_uint32(mapping.pid)
        self.add_target(mapping.pid, comm)
        if not alive(mapping.pid):
            del targets[key]
            return False
        totals = read_totals(mapping)
        if totals is not None and self.seed(mapping.pid, totals):
            # An exec between reading the totals and seeding them: the new image's init probe may
            # have found no entry to drop, and the old image's totals would stay. Drop them; the
            # new image's first flush starts its entry.
            try:
                if targets[key].inits:
                    del self.table("counters")[key]
            except KeyError:
                pass  # exited meanwhile, and expired
        return True

    def seed(self, pid: int, totals) -> bool:
        """Start a process's entry from totals read out of its memory, unless a flush got there
        first (then the flush's own totals are newer). True if the seed went in."""
        from bcc.libbcc import lib  # bcc's table API has no flags for an update

        key = ct.c_uint32(pid)
        return lib.bpf_update_elem(self.table("counters").map_fd, ct.byref(key), ct.byref(totals), BPF_NOEXIST) == 0

    def table(self, name: str):
        """A map, read through the types of the contract's headers where Python reads its fields."""
        if name == "counters":
            return self.bpf.get_table(name, keytype=ct.c_uint32, leaftype=totals_ctype())
        if name in MAP_STRUCTS:
            key, leaf = MAP_STRUCTS[name]
            return self.bpf.get_table(name, keytype=map_ctype(key) if isinstance(key, str) else key,
                                      leaftype=map_ctype(leaf))
        return self.bpf[name]

    def close_in_background(self):
        """Close, the kernel's detach left to a child process: a command that has written its output
        (profile, snapshot) returns at once instead of ~1.5 s later. The child holds the descriptors, so
        ours close at once (a detach happens when a probe's last descriptor goes); the probes stay
        attached until the child is done."""
        if os.fork() == 0:
            try:
                null = os.open(os.devnull, os.O_RDWR)
                for fd in (0, 1, 2):  # a pipe reading our output must not wait for the child
                    os.dup2(null, fd)
                self.close()
            finally:
                os._exit(0)
        self.close()

    def close(self):
        # Each detach waits for an RCU grace period in the kernel, uprobes one after another; done
        # from as many threads, the tracepoints' waits overlap: 1.4 s instead of 2.7 s for 25 probes.
        detaches = [partial(_close_perf_event, fd) for fd in self._fds]
        self._fds = []
        if getattr(self, "bpf", None) is not None:
            detaches += [partial(self.bpf.detach_tracepoint, tp) for tp in list(self.bpf.tracepoint_fds)]
        with ThreadPoolExecutor(max_workers=max(1, len(detaches))) as pool:
            for done in [pool.submit(d) for d in detaches]:
                done.result()
        if getattr(self, "bpf", None) is not None:
            self.bpf.cleanup()
            self.bpf = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
