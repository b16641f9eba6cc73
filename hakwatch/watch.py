"""Watching and serving, as `attach` and `run` do it: the options every way of watching shares, the
pieces a watch is made of (probes, readings, server), and who runs as what.

Loading BPF, attaching uprobes and reading other users' memory need root; serving HTTP must not run as
root. So everything privileged is set up first (the probes, the root helpers that read memory and
symbols), then hakwatch drops to --user and serves. `run` forks the command, which waits on a pipe
until its pid is in the targets map; `attach --all` keeps a root parent that only looks for new copies
of libhakmem and forks an unprivileged child that serves.
"""

import ctypes as ct
import os
import signal
import time
from dataclasses import dataclass

import click

from hakwatch.errors import HakwatchError
from hakwatch.export.server import drop_privileges

RESCAN_S = 10.0  # attach --all: the backstop rescan of /proc, for execs the BPF map dropped


@dataclass(frozen=True)
class WatchOptions:
    """What every way of watching takes from the command line (cli.py's common options)."""
    listen: str
    retention: float
    max_targets: int
    detail: tuple[str, ...]
    profile: bool
    user: str
    web_config: str | None
    group_by: str = "pid"


def say(line: str):
    click.echo(f"hakwatch: {line}", err=True)


class Watch:
    """Probes loaded and attached, the Reader, the server bound but not serving yet. `label` is the
    library as the metrics name it (default: `lib`; "" when hakwatch watches several copies)."""

    def __init__(self, lib: str | None, opts: WatchOptions, *, follow_init=False, follow_fork=False, label=None,
                 watch_execs=False):
        from hakwatch.attach.bpf import Probes
        from hakwatch.export.collector import HakwatchCollector
        from hakwatch.read.live_helper import LiveHelper
        from hakwatch.read.reader import Reader
        from hakwatch.export.server import MetricsServer, parse_listen

        parse_listen(opts.listen)  # a garbage --listen or web configuration fails before anything is loaded
        web = None
        if opts.web_config:
            from hakwatch.export.webconfig import load
            web = load(opts.web_config)
        self.probes = Probes(lib, max_targets=opts.max_targets, follow_init=follow_init, follow_fork=follow_fork,
                             detail_refill="refill" in opts.detail, watch_execs=watch_execs, profile=opts.profile)
        pprof = live = None
        try:
            live = LiveHelper(self.probes)  # forked now, while hakwatch is root
            self.reader = Reader(self.probes, opts.retention, live)
            if opts.profile:
                from hakwatch.export.pprof_http import PprofEndpoints
                pprof = PprofEndpoints(self.probes)
            self.server = MetricsServer(opts.listen, HakwatchCollector(self.reader, lib, label, opts.group_by), web, pprof)
        except BaseException:
            if pprof is not None:
                pprof.close()
            if live is not None:
                live.close()
            self.probes.close()
            raise

    def close(self):
        self.server.close()
        self.reader.close()
        self.probes.close()


def _set_parent_death_signal():
    libc = ct.CDLL(None, use_errno=True)
    PR_SET_PDEATHSIG = 1
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def serve_until_gone(watch: Watch, user: str, pids_given: bool):
    """attach --pid and --lib: serve until the processes given have all exited (--pid), or until stopped."""
    drop_privileges(user)
    watch.server.start()
    say(f"serving {watch.server.scheme}://{watch.server.address}/metrics")
    while True:
        time.sleep(1)
        watch.reader.expire()
        # the targets map alone: a reading of every process's memory each second would be work for nothing
        if pids_given and not list(watch.probes.table("targets").keys()):
            say("every watched process has exited")
            return


def serve_all(watch: Watch, user: str):
    """attach --all. Finding copies that appear later means reading other users' /proc/PID/maps and
    attaching uprobes, which needs root; serving HTTP must not run as root. So this process keeps root,
    stays off the network and only looks for copies, while a child it forks drops to --user and serves
    /metrics from the same kernel maps."""
    from hakwatch.attach.discover import Discovery

    discovery = Discovery(watch.probes, say)
    discovery.scan()
    parent = os.getpid()
    child = os.fork()
    if child == 0:
        status = 0
        try:
            drop_privileges(user)
            _set_parent_death_signal()  # after the drop, which clears it
            if os.getppid() != parent:
                raise KeyboardInterrupt  # the parent died before that: nobody to serve for
            watch.server.start()
            say(f"serving {watch.server.scheme}://{watch.server.address}/metrics (every copy of libhakmem on this host)")
            while True:
                time.sleep(1)
                watch.reader.expire()
        except KeyboardInterrupt:
            pass
        except HakwatchError as e:
            say(str(e))
            status = e.status
        except Exception as e:
            say(f"internal error in the serving process ({type(e).__name__}: {e}); please report it")
            status = 70
        finally:
            watch.server.stop()
            os._exit(status)  # the parent detaches: the child must not run bcc's cleanup
    watch.server.stop()  # the parent's copy of the listening socket: only the child serves
    try:
        rescan = time.monotonic() + RESCAN_S
        while not os.waitpid(child, os.WNOHANG)[0]:
            time.sleep(0.2)
            discovery.new_execs()
            if time.monotonic() >= rescan:
                discovery.scan()
                rescan = time.monotonic() + RESCAN_S
        raise HakwatchError("the serving process ended; stopping")
    except KeyboardInterrupt:
        pass
    finally:
        try:
            os.kill(child, signal.SIGTERM)
            os.waitpid(child, 0)
        except (ProcessLookupError, ChildProcessError):
            pass  # already gone


def run_command(watch: Watch, lib: str, command: tuple[str, ...], user: str) -> tuple[int, int]:
    """Start `command` with `lib` preloaded, watched from its first allocation, and serve until it
    ends: (its pid, its wait status). The child waits on a pipe until its pid is in the targets map,
    so its first allocation is seen; an exec failure comes back through a close-on-exec pipe."""
    go_r, go_w = os.pipe()
    err_r, err_w = os.pipe2(os.O_CLOEXEC)
    child = os.fork()
    if child == 0:
        os.close(go_w)
        os.close(err_r)
        _set_parent_death_signal()
        os.read(go_r, 1)  # released once the child's pid is in the targets map
        env = dict(os.environ)
        env["LD_PRELOAD"] = f"{lib} {env['LD_PRELOAD']}" if env.get("LD_PRELOAD") else lib
        try:
            os.execvpe(command[0], list(command), env)
        except OSError as e:
            os.write(err_w, f"{command[0]}: {e.strerror}".encode())
            os._exit(127)
    os.close(go_r)
    os.close(err_w)
    watch.probes.add_target(child, os.path.basename(command[0])[:15])
    os.write(go_w, b"g")
    os.close(go_w)
    failure = os.read(err_r, 4096).decode()
    os.close(err_r)
    if failure:
        os.waitpid(child, 0)
        raise HakwatchError(failure, status=127)
    drop_privileges(user)
    watch.server.start()
    say(f"serving {watch.server.scheme}://{watch.server.address}/metrics while {command[0]} runs")
    while True:
        try:
            done, status = os.waitpid(child, os.WNOHANG)
        except KeyboardInterrupt:
            continue  # Ctrl-C reached the command too: wait for it to end
        if done:
            return child, status
        watch.reader.expire()
        time.sleep(0.1)
