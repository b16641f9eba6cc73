"""hakwatch's command line: thin click commands over the modules that do the work."""

import functools
import os
import signal
import sys
from dataclasses import replace

import click

from hakwatch import __version__
from hakwatch.errors import HakwatchError, friendly
from hakwatch.read.groups import KEYS

LISTEN = "127.0.0.1:10464"
INSTALLED = ""  # --lib given without a path


def _stop_on_signals():
    """SIGTERM ends hakwatch like Ctrl-C does, through the same clean detach."""
    def handler(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, handler)


def _common(command):
    """The options every way of watching takes, handed to the command as one WatchOptions (`opts`)."""
    @functools.wraps(command)
    def with_options(*args, listen, retention, max_targets, detail, profile, user, web_config, **kwargs):
        from hakwatch.watch import WatchOptions
        opts = WatchOptions(listen=listen, retention=retention, max_targets=max_targets, detail=tuple(detail),
                            profile=profile, user=user, web_config=web_config)
        return command(*args, opts=opts, **kwargs)

    fn = with_options
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
        from hakwatch.attach.bpf import Probes
        with Probes(None):
            pass
        click.echo("hakwatch: BPF programs compiled and loaded; nothing attached")
        return
    if ctx.invoked_subcommand is None:
        click.echo(ctx.get_help())


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
def attach(pids, lib, all_copies, group_by, opts):
    """Attach to running processes and serve /metrics.

    With --pid, runs until every watched process has exited (and --retention has passed); with --lib
    or --all, until stopped. The allocator's counters and memory gauges are the process's state as of
    each scrape (read from its memory); syscalls and page faults count from the attach. Processes in
    chroots and containers are watched by their host pid.

    \b
    Examples:
      sudo hakwatch attach --pid 4242 --pid 4243
      sudo hakwatch attach --lib          # the installed libhakmem (Debian's libhakmem1)
      sudo hakwatch attach --lib /usr/local/lib/libhakmem.so --listen 0.0.0.0:10464
      sudo hakwatch attach --all          # every copy: each container image's own included
      curl -s 127.0.0.1:10464/metrics | grep hakmem_syscalls_total
    """
    from hakwatch.attach.targets import check_pid, comm_of, file_id, library_of, processes_mapping
    from hakwatch.watch import Watch, serve_all, serve_until_gone

    if (bool(pids) + (lib is not None) + all_copies) != 1:
        raise HakwatchError("give --pid PID (one or more), --lib [PATH] or --all", status=2)
    if lib == INSTALLED:
        from hakwatch.attach.targets import default_library
        lib = str(default_library())
    if os.geteuid() != 0:
        raise HakwatchError("attaching needs root: run hakwatch with sudo")
    _stop_on_signals()
    opts = replace(opts, group_by=group_by or ("comm" if lib is not None else "pid"))
    if all_copies:
        from hakwatch.attach.discover import first_copy
        from hakwatch.attach.targets import default_library
        first = first_copy() or str(default_library())  # a library to take the probes' layout from
        watch = Watch(first, opts, follow_init=True, label="", watch_execs=True)
        try:
            serve_all(watch, opts.user)
        finally:
            watch.close()
        return
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
        watch = Watch(running[0].lasting_path(), opts, label=running[0].path)
    else:
        if not os.path.isfile(lib):
            raise HakwatchError(f"{lib}: no such file")
        watch = Watch(lib, opts, follow_init=True)
        running = processes_mapping(lib)
    try:
        watched = [m for m in running if watch.probes.watch_running(m, comm_of(m.pid))]
        if pids and not watched:
            raise HakwatchError(f"process{'es' if len(pids) > 1 else ''} {', '.join(pids)} exited while hakwatch attached")
        serve_until_gone(watch, opts.user, bool(pids))
    except KeyboardInterrupt:
        return
    finally:
        watch.close()


@main.command(context_settings={"ignore_unknown_options": True})
@click.option("--lib", type=click.Path(dir_okay=False), help="The libhakmem to preload (default: this checkout's build, else the installed one).")
@click.option("--summary", type=click.File("w", lazy=False), metavar="FILE",
              help="Write hakwatch's totals for the command's process at the end (HAKMEM_STATS schema). "
              "Opened before hakwatch drops root, so it may be anywhere root can write.")
@_common
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@friendly
def run(lib, summary, command, opts):
    """Run COMMAND with libhakmem preloaded, watched (with its child processes) from its first
    allocation, serving /metrics meanwhile; exit with its status.

    \b
    Examples:
      sudo hakwatch run -- python3 app.py
      sudo hakwatch run --summary /tmp/totals.json -- ./server --port 8080
      sudo HAKMEM_STATS=/tmp/own.json hakwatch run --summary /tmp/seen.json -- ./batch
    """
    from hakwatch.read import stats
    from hakwatch.attach.library import library_version
    from hakwatch.attach.targets import default_library
    from hakwatch.watch import Watch, run_command

    lib = os.path.abspath(lib) if lib else str(default_library())
    if not os.path.isfile(lib):
        raise HakwatchError(f"{lib}: no such file")
    if os.geteuid() != 0:
        raise HakwatchError("attaching needs root: run hakwatch with sudo")
    version = library_version(lib)  # now: after the privilege drop the file may be out of reach (/root)
    watch = Watch(lib, opts, follow_fork=True)
    try:
        child, status = run_command(watch, lib, command, opts.user)
        if summary:
            t = watch.reader.read().get(child)
            if t is None or t.memory is None:
                raise HakwatchError(f"{command[0]} ended before hakwatch saw it (no summary written)")
            stats.write(summary, t, version)
        return_code = os.waitstatus_to_exitcode(status)
    finally:
        watch.close()
    sys.exit(return_code if return_code >= 0 else 128 - return_code)


from hakwatch.commands.doctor import doctor  # noqa: E402
from hakwatch.commands.probes import probes  # noqa: E402
from hakwatch.commands.profile import profile  # noqa: E402
from hakwatch.commands.top import snapshot, top  # noqa: E402

main.add_command(doctor)
main.add_command(probes)
main.add_command(profile)
main.add_command(snapshot)
main.add_command(top)
