"""hakwatch's command line: thin click commands over the modules that do the work."""

import ctypes as ct
import os
import signal
import sys
import time

import click

from hakwatch import __version__
from hakwatch.errors import HakwatchError, friendly
from hakwatch.groups import KEYS

LISTEN = "127.0.0.1:10464"
INSTALLED = ""  # --lib given without a path


def _stop_on_signals():
    """SIGTERM ends hakwatch like Ctrl-C does, through the same clean detach."""
    def handler(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, handler)


def _common(fn):
    fn = click.option("--user", default="nobody", show_default=True,
                      help="Unprivileged user to become once attached (the HTTP server never runs as root).")(fn)
    fn = click.option("--detail", type=click.Choice(["refill"]), multiple=True,
                      help="Also attach the per-event refill probe (costs a trap per refill).")(fn)
    fn = click.option("--profile", is_flag=True,
                      help="Also take allocation samples and the stacks of SuperSlab, large-block and syscall "
                           "events: profiles at /debug/pprof/allocs, heap and churn (bench/RESULTS.md has the cost).")(fn)
    fn = click.option("--max-targets", type=click.IntRange(1, 1 << 20), default=1024, show_default=True,
                      help="Processes watched at most (sizes the kernel maps).")(fn)
    fn = click.option("--retention", type=click.FloatRange(0), default=60.0, show_default=True,
                      help="Seconds an exited process keeps its final values before its series go.")(fn)
    fn = click.option("--listen", default=LISTEN, show_default=True,
                      help="HOST:PORT to serve /metrics on (loopback unless you choose otherwise).")(fn)
    fn = click.option("--web.config.file", "web_config", type=click.Path(dir_okay=False), metavar="FILE",
                      help="TLS and basic auth for /metrics, in exporter-toolkit's format (as node_exporter's); "
                      "read once, as root.")(fn)
    return fn


@click.group(invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="hakwatch")
@click.option("--check", is_flag=True, help="Compile and load the BPF programs, attach nothing, exit.")
@click.pass_context
@friendly
def main(ctx, check):
    """Watch the hakmem allocator and the memory syscalls it causes, with eBPF.

    \b
    Examples:
      sudo hakwatch run -- python3 app.py          # watch a command from its first allocation
      sudo hakwatch attach --pid 4242              # watch a running process
      sudo hakwatch attach --lib /usr/local/lib/libhakmem.so   # every process using it
      hakwatch probes libhakmem/build/libhakmem.so # list the USDT probes (no root)
      sudo hakwatch doctor                         # what this machine lacks, and the fix
    """
    if check:
        from hakwatch.bpf import Probes
        with Probes(None):
            pass
        click.echo("hakwatch: BPF programs compiled and loaded; nothing attached")
        return
    if ctx.invoked_subcommand is None:
        click.echo(ctx.get_help())


def _watch(lib, listen, retention, max_targets, detail, user, *, follow_init=False, follow_fork=False, label=None,
           watch_execs=False, web_config=None, group_by="pid", profile=False):
    """Load and attach, bind the server; returns (probes, reader, server) not yet serving. `label` is
    the library as the metrics name it (default: `lib`; "" when hakwatch watches several copies)."""
    from hakwatch.bpf import Probes
    from hakwatch.collector import HakwatchCollector
    from hakwatch.reader import Reader
    from hakwatch.server import MetricsServer, parse_listen

    parse_listen(listen)  # a garbage --listen or web configuration fails before anything is loaded
    web = None
    if web_config:
        from hakwatch.webconfig import load
        web = load(web_config)
    probes = Probes(lib, max_targets=max_targets, follow_init=follow_init, follow_fork=follow_fork,
                    detail_refill="refill" in detail, watch_execs=watch_execs, profile=profile)
    pprof = live = None
    try:
        from hakwatch.live_helper import LiveHelper
        live = LiveHelper()  # forked now, while hakwatch is root
        reader = Reader(probes, retention, live)
        if profile:
            from hakwatch.pprof_http import PprofEndpoints
            pprof = PprofEndpoints(probes)
        server = MetricsServer(listen, HakwatchCollector(reader, lib, label, group_by), web, pprof)
    except BaseException:
        if pprof is not None:
            pprof.close()
        if live is not None:
            live.close()
        probes.close()
        raise
    return probes, reader, server


@main.command()
@click.option("--pid", "pids", multiple=True, metavar="PID", help="A process to watch (repeatable).")
@click.option("--lib", type=click.Path(dir_okay=False), is_flag=False, flag_value=INSTALLED, metavar="[PATH]",
              help="Watch every process mapping this libhakmem, now and later (without PATH: this checkout's "
                   "build, else the installed one).")
@click.option("--all", "all_copies", is_flag=True,
              help="Watch every process using any copy of libhakmem on this host, containers included, now and later.")
@click.option("--group-by", type=click.Choice(KEYS), metavar="KEY",
              help="Series per process (pid) or per group of processes: comm, exe, unit (systemd), cgroup. Default: "
                   "comm with --lib (a host's programs: a bounded number however many processes), pid otherwise.")
@_common
@friendly
def attach(pids, lib, all_copies, group_by, listen, retention, max_targets, detail, profile, user, web_config):
    """Attach to running processes and serve /metrics.

    With --pid, runs until every watched process has exited (and --retention has passed); with --lib
    or --all, until stopped. The allocator's counters and memory gauges are the process's whole life
    from the first scrape (read from its memory at attach); syscalls and page faults count from the
    attach. Processes in chroots and containers are watched by their host pid.

    \b
    Examples:
      sudo hakwatch attach --pid 4242 --pid 4243
      sudo hakwatch attach --lib          # the installed libhakmem (Debian's libhakmem1)
      sudo hakwatch attach --lib /usr/local/lib/libhakmem.so --listen 0.0.0.0:10464
      sudo hakwatch attach --all          # every copy: each container image's own included
      curl -s 127.0.0.1:10464/metrics | grep hakmem_syscalls_total
    """
    from hakwatch.targets import check_pid, comm_of, file_id, library_of, processes_mapping

    if (bool(pids) + (lib is not None) + all_copies) != 1:
        raise HakwatchError("give --pid PID (one or more), --lib [PATH] or --all", status=2)
    if lib == INSTALLED:
        from hakwatch.targets import default_library
        lib = str(default_library())
    if os.geteuid() != 0:
        raise HakwatchError("attaching needs root: run hakwatch with sudo")
    _stop_on_signals()
    group_by = group_by or ("comm" if lib is not None else "pid")
    if all_copies:
        return _attach_all(listen, retention, max_targets, detail, user, web_config, group_by, profile)
    if pids:
        running, files = [], set()
        for pid in (check_pid(p) for p in pids):
            found = library_of(pid)
            if not found:
                raise HakwatchError(f"process {pid} ({comm_of(pid)}) does not use libhakmem (not in /proc/{pid}/maps)")
            try:
                files.add(file_id(found.file))
            except OSError:
                raise HakwatchError(f"process {pid} exited while hakwatch attached") from None
            running.append(found)
        if len(files) > 1:
            raise HakwatchError("those processes map different libhakmem files: run one hakwatch per "
                                "library, or `hakwatch attach --all`")
        probes, reader, server = _watch(running[0].lasting_path(), listen, retention, max_targets, detail, user,
                                        label=running[0].path, web_config=web_config, group_by=group_by,
                                        profile=profile)
    else:
        if not os.path.isfile(lib):
            raise HakwatchError(f"{lib}: no such file")
        probes, reader, server = _watch(lib, listen, retention, max_targets, detail, user, follow_init=True,
                                        web_config=web_config, group_by=group_by, profile=profile)
        running = processes_mapping(lib)
    try:
        watched = [m for m in running if probes.watch_running(m, comm_of(m.pid))]
        if pids and not watched:
            raise HakwatchError(f"process{'es' if len(pids) > 1 else ''} {', '.join(pids)} exited while hakwatch attached")
        from hakwatch.server import drop_privileges
        drop_privileges(user)
        server.start()
        click.echo(f"hakwatch: serving {server.scheme}://{server.address}/metrics", err=True)
        while True:
            time.sleep(1)
            reader.expire()
            if pids and not reader.read():
                click.echo("hakwatch: every watched process has exited", err=True)
                return
    except KeyboardInterrupt:
        return
    finally:
        server.close()
        reader.close()
        probes.close()


def _attach_all(listen, retention, max_targets, detail, user, web_config, group_by, profile):
    """attach --all. Finding copies that appear later means reading other users' /proc/PID/maps and
    attaching uprobes, which needs root; serving HTTP must not run as root. So this process keeps root,
    stays off the network and only looks for copies, while a child it forks drops to --user and serves
    /metrics from the same kernel maps."""
    from hakwatch.discover import Discovery, first_copy
    from hakwatch.server import drop_privileges
    from hakwatch.targets import default_library

    say = lambda line: click.echo(f"hakwatch: {line}", err=True)  # noqa: E731
    first = first_copy() or str(default_library())  # a library to take the probes' layout from
    probes, reader, server = _watch(first, listen, retention, max_targets, detail, user,
                                    follow_init=True, label="", watch_execs=True, web_config=web_config,
                                    group_by=group_by, profile=profile)
    try:
        discovery = Discovery(probes, say)
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
                server.start()
                say(f"serving {server.scheme}://{server.address}/metrics (every copy of libhakmem on this host)")
                while True:
                    time.sleep(1)
                    reader.expire()
            except KeyboardInterrupt:
                pass
            except HakwatchError as e:
                say(str(e))
                status = e.status
            except Exception as e:
                say(f"internal error in the serving process ({type(e).__name__}: {e}); please report it")
                status = 70
            finally:
                server.stop()
                os._exit(status)  # the parent detaches: the child must not run bcc's cleanup
        server.stop()  # the parent's copy of the listening socket: only the child serves
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
    finally:
        server.close()
        reader.close()
        probes.close()


RESCAN_S = 10.0  # attach --all: the backstop rescan of /proc, for execs the BPF map dropped


def _set_parent_death_signal():
    libc = ct.CDLL(None, use_errno=True)
    PR_SET_PDEATHSIG = 1
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


@main.command(context_settings={"ignore_unknown_options": True})
@click.option("--lib", type=click.Path(dir_okay=False), help="The libhakmem to preload (default: this checkout's build, else the installed one).")
@click.option("--summary", type=click.File("w", lazy=False), metavar="FILE",
              help="Write hakwatch's totals for the command's process at the end (HAKMEM_STATS schema). "
              "Opened before hakwatch drops root, so it may be anywhere root can write.")
@_common
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@friendly
def run(lib, summary, listen, retention, max_targets, detail, profile, user, web_config, command):
    """Run COMMAND with libhakmem preloaded, watched (with its child processes) from its first
    allocation, serving /metrics meanwhile; exit with its status.

    \b
    Examples:
      sudo hakwatch run -- python3 app.py
      sudo hakwatch run --summary /tmp/totals.json -- ./server --port 8080
      sudo HAKMEM_STATS=/tmp/own.json hakwatch run --summary /tmp/seen.json -- ./batch
    """
    from hakwatch import stats
    from hakwatch.library import library_version
    from hakwatch.server import drop_privileges
    from hakwatch.targets import default_library

    lib = os.path.abspath(lib) if lib else str(default_library())
    if not os.path.isfile(lib):
        raise HakwatchError(f"{lib}: no such file")
    if os.geteuid() != 0:
        raise HakwatchError("attaching needs root: run hakwatch with sudo")
    version = library_version(lib)  # now: after the privilege drop the file may be out of reach (/root)
    probes, reader, server = _watch(lib, listen, retention, max_targets, detail, user, follow_fork=True,
                                    web_config=web_config, profile=profile)
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
    try:
        probes.add_target(child, os.path.basename(command[0])[:15])
        os.write(go_w, b"g")
        os.close(go_w)
        failure = os.read(err_r, 4096).decode()
        os.close(err_r)
        if failure:
            os.waitpid(child, 0)
            raise HakwatchError(failure, status=127)
        drop_privileges(user)
        server.start()
        click.echo(f"hakwatch: serving {server.scheme}://{server.address}/metrics while {command[0]} runs", err=True)
        while True:
            try:
                done, status = os.waitpid(child, os.WNOHANG)
            except KeyboardInterrupt:
                continue  # Ctrl-C reached the command too: wait for it to end
            if done:
                break
            reader.expire()
            time.sleep(0.1)
        if summary:
            t = reader.read().get(child)
            if t is None or t.memory is None:
                raise HakwatchError(f"{command[0]} ended before hakwatch saw it (no summary written)")
            stats.write(summary, t, version)
        return_code = os.waitstatus_to_exitcode(status)
    finally:
        server.close()
        reader.close()
        probes.close()
    sys.exit(return_code if return_code >= 0 else 128 - return_code)


from hakwatch.doctor import doctor  # noqa: E402
from hakwatch.probes_cmd import probes  # noqa: E402
from hakwatch.profile_cmd import profile  # noqa: E402
from hakwatch.top import snapshot, top  # noqa: E402

main.add_command(doctor)
main.add_command(probes)
main.add_command(profile)
main.add_command(snapshot)
main.add_command(top)
