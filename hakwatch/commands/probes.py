"""`hakwatch probes`: the USDT probes in a library's ELF notes, or in everything a process maps."""

import json
from dataclasses import replace

import click

from hakwatch.errors import HakwatchError, friendly


@click.command()
@click.argument("path", required=False, type=click.Path(dir_okay=False))
@click.option("--pid", type=int, help="List the probes of every object this process maps.")
@click.option("--json", "as_json", is_flag=True, help="One JSON list instead of a table.")
def probes(path, pid, as_json):
    """List USDT probes (provider, name, arguments, semaphore, file offsets). Needs no root.

    \b
    Examples:
      hakwatch probes libhakmem/build/libhakmem.so
      sudo hakwatch probes --pid 4242 --json
    """
    friendly(_list)(path, pid, as_json)


def _list(path, pid, as_json):
    from hakwatch.attach.usdt import read_probes

    if bool(path) == bool(pid):
        raise HakwatchError("give a library PATH or --pid PID", status=2)
    if pid:
        from hakwatch.attach.targets import check_pid, file_mappings

        check_pid(str(pid))
        found = []
        for m in file_mappings(pid):
            # the mapping itself (root only), else the path in the process's root (a process of one's own)
            for candidate in (m.file, f"/proc/{pid}/root{m.path}"):
                try:
                    found += [replace(p, path=m.path) for p in read_probes(candidate)]  # as the process names it
                    break
                except HakwatchError:
                    continue  # not ELF, not readable from here, or gone
    else:
        found = read_probes(path)
    if not found:
        raise HakwatchError(f"no USDT probes in {path or f'process {pid}'}")
    if as_json:
        click.echo(json.dumps([p.__dict__ for p in found], indent=1))
        return
    click.echo(f"{'provider':<10} {'name':<14} {'offset':>8} {'semaphore':>9}  arguments   [file]")
    for p in found:
        sem = f"{p.semaphore_offset:#x}" if p.semaphore_offset else "-"
        click.echo(f"{p.provider:<10} {p.name:<14} {p.offset:>#8x} {sem:>9}  {p.arguments}   [{p.path}]")
