"""Symbols for the profiles an unprivileged server serves (/debug/pprof on `run` and `attach`).

Reading another user's /proc/PID/maps and the files it maps needs root, and hakwatch's HTTP server
never runs as root. So a helper process, forked while hakwatch is still root, takes the symbols of each
watched process while it is alive (as `hakwatch profile` does) and answers the server's one question
over a socket pair: for this pid and these addresses, the mappings and the function names. It does
nothing else, keeps no descriptor but the socket and the targets map, and ends with the server (the
privilege separation of OpenSSH's monitor, in small).
"""

import resource
import select
import socket

from hakwatch.errors import HakwatchError
from hakwatch.helper_ipc import end_helper, recv_json, send_json, start_helper
from hakwatch.profile.symbols import Mapping

POLL_S = 0.5  # how often the helper looks for new targets: a process living less may go unnamed


class RemoteSymbols:
    """One process's symbols through the helper: what hakwatch/profile/profiles.py asks of ProcessSymbols."""

    def __init__(self, symbolizer: "Symbolizer", pid: int):
        self.symbolizer, self.pid, self.mappings = symbolizer, pid, []

    def resolve(self, addresses: list[int]) -> dict[int, tuple[str, Mapping | None]]:
        self.mappings, names = self.symbolizer.resolve(self.pid, addresses)
        return names


class Symbolizer:
    """The server's end: `resolve(pid, addresses)`."""

    def __init__(self, probes):
        targets = probes.table("targets")
        self.sock, self.pid = start_helper(lambda sock: _serve(sock, targets), keep={targets.map_fd})

    def resolve(self, pid: int, addresses: list[int]) -> tuple[list[Mapping], dict[int, tuple[str, Mapping | None]]]:
        try:
            send_json(self.sock, {"pid": pid, "addresses": addresses})
            reply = recv_json(self.sock)
        except OSError as e:
            raise HakwatchError(f"the symbol helper is gone ({e.strerror})") from None
        if reply is None:
            raise HakwatchError("the symbol helper is gone")
        mappings = [Mapping(*m) for m in reply["mappings"]]
        names = {a: (name, mappings[i] if i >= 0 else None) for a, name, i in reply["names"]}
        return mappings, names

    def close(self):
        end_helper(self.sock, self.pid)


def _serve(sock: socket.socket, targets):
    """The helper's loop, until the server's end of the socket closes."""
    from hakwatch.profile.symbols import ProcessSymbols

    # bcc keeps each process's mapped files open: as many descriptors as the host allows
    resource.setrlimit(resource.RLIMIT_NOFILE, (resource.getrlimit(resource.RLIMIT_NOFILE)[1],) * 2)
    procs: dict[int, tuple[int, ProcessSymbols]] = {}  # pid -> its image (inits), its symbols

    def take(watched: dict[int, int]):
        """Symbols of each image: a pid that execs (`run`'s command, added before its exec) gets new ones."""
        for pid in [p for p, (inits, _) in procs.items() if watched.get(p) != inits]:
            procs.pop(pid)[1].close()
        for pid in watched.keys() - procs.keys():
            try:
                procs[pid] = (watched[pid], ProcessSymbols(pid))
            except Exception:  # gone meanwhile: nothing to name
                continue

    while True:
        take({k.value: v.inits for k, v in targets.items()})
        if not select.select([sock], [], [], POLL_S)[0]:
            continue
        ask = recv_json(sock)
        if ask is None:
            return
        take({k.value: v.inits for k, v in targets.items()})  # an exec since the last look
        send_json(sock, _answer(procs.get(ask["pid"], (0, None))[1], ask["addresses"]))


def _answer(symbols, addresses: list[int]) -> dict:
    if symbols is None:
        return {"mappings": [], "names": [[a, f"{a:#x}", -1] for a in addresses]}
    resolved = symbols.resolve(addresses)
    index = {m: i for i, m in enumerate(symbols.mappings)}
    return {"mappings": [[m.start, m.limit, m.offset, m.path] for m in symbols.mappings],
            "names": [[a, name, index.get(m, -1)] for a, (name, m) in resolved.items()]}
