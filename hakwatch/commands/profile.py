"""`hakwatch profile`: watch one process for a while and write who allocated, who holds and who made
the allocator and the kernel work, as a pprof profile or folded stacks (hakwatch/profile/profiles.py)."""

import os
import sys
import tempfile
import time

import click

from hakwatch.errors import HakwatchError, friendly
from hakwatch.profile.pprof import FORMATS, write
from hakwatch.profile.profiles import KINDS


@click.command()
@click.option("--pid", required=True, help="The process to profile.")
@click.option("--duration", type=click.FloatRange(0.1), default=10.0, show_default=True,
              help="Seconds to watch (less if the process exits first).")
@click.option("--kind", type=click.Choice(list(KINDS)), default="alloc", show_default=True,
              help="alloc: who allocated; inuse: who holds what was allocated meanwhile; churn: who made "
                   "SuperSlab and large-block maps, unmaps, purges and memory syscalls.")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="pprof", show_default=True,
              help="pprof: for go tool pprof, Pyroscope, Grafana; folded: for flame graph tools.")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, allow_dash=True),
              help="File to write (- for standard output).")
def profile(pid, duration, kind, fmt, output):
    """Profile one process's allocations, memory held or churn, with stacks.

    \b
    Examples:
      sudo hakwatch profile --pid 4242 --duration 30 -o alloc.pb.gz && go tool pprof -top alloc.pb.gz
      sudo hakwatch profile --pid 4242 --kind churn --format folded -o - | flamegraph.pl > churn.svg
    """
    friendly(_profile)(pid, duration, kind, fmt, output)


def _profile(pid_text, duration, kind, fmt, output):
    from hakwatch.attach.bpf import Probes
    from hakwatch.profile.profiles import build
    from hakwatch.profile.symbols import ProcessSymbols
    from hakwatch.attach.targets import alive, check_pid, comm_of, library_of
    from hakwatch.read.runtime import advice, hidden_by

    pid = check_pid(pid_text)
    mapping = library_of(pid)
    if not mapping:
        raise HakwatchError(f"process {pid} ({comm_of(pid)}) does not use libhakmem")
    comm, start_ns = comm_of(pid), time.time_ns()
    probes = Probes(mapping.lasting_path(), profile=True)
    symbols = None
    try:
        symbols = ProcessSymbols(pid)  # now, while it is alive: its profile stays readable if it exits
        if not probes.watch_running(mapping, comm):
            raise HakwatchError(f"process {pid} exited while hakwatch attached")
        click.echo(f"hakwatch: profiling process {pid} ({comm}) for {duration:g} s", err=True)
        if hidden_by(pid):
            click.echo(advice(pid, comm), err=True)
        end = time.monotonic() + duration
        while time.monotonic() < end and alive(pid):
            time.sleep(min(0.1, max(0.0, end - time.monotonic())))
        result = build(probes, symbols, kind, start_ns)
        probes.close_in_background()
        probes = None
        _save(write(result, fmt), output)
    finally:
        if symbols is not None:
            symbols.close()
        if probes is not None:
            probes.close()
    total = [sum(values[i] for _, values, _ in result.samples) for i in (0, 1)]
    what = f"{total[1] / 2**20:,.1f} MiB" if kind != "churn" else f"{total[0]:,} events"
    click.echo(f"hakwatch: {len(result.samples)} stacks, {what}, written to {output if output != '-' else 'standard output'}",
               err=True)


def _save(data: bytes, output: str):
    if output == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return
    where = os.path.dirname(os.path.abspath(output))
    try:
        fd, tmp = tempfile.mkstemp(dir=where, prefix=".hakwatch-profile-")
    except OSError as e:
        raise HakwatchError(f"cannot write {output}: {e.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, output)
    except OSError as e:
        os.unlink(tmp)
        raise HakwatchError(f"cannot write {output}: {e.strerror}") from None
