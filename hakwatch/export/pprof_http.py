"""/debug/pprof on the metrics server of `run` and `attach --profile`: the profiles of `hakwatch
profile` since hakwatch attached, where pull-based continuous profilers (Pyroscope, Parca) look for a
Go program's, next to /metrics.

  /debug/pprof/allocs   who allocated (alloc)
  /debug/pprof/heap     who holds (inuse)
  /debug/pprof/churn    who made the allocator and the kernel work (churn)

Every watched process in one profile (each sample labelled with its pid), or `?pid=PID` for one.
Symbols come from the root helper (hakwatch/profile/symbolizer.py): the server itself runs unprivileged.
"""

import threading
import time
from urllib.parse import parse_qs

from hakwatch.errors import HakwatchError
from hakwatch.profile.pprof import load_profile_proto, to_pprof
from hakwatch.profile.profiles import build, merge, read
from hakwatch.profile.symbolizer import RemoteSymbols, Symbolizer

PATHS = {"/debug/pprof/allocs": "alloc", "/debug/pprof/heap": "inuse", "/debug/pprof/churn": "churn"}


class PprofEndpoints:
    def __init__(self, probes):
        load_profile_proto()  # imported now, as root: after the drop a checkout under /root is out of reach
        self.probes = probes
        self.symbolizer = Symbolizer(probes)  # forked now, while hakwatch is root
        self.lock = threading.Lock()  # one question at a time on the helper's socket
        self.start_ns = time.time_ns()

    def __call__(self, environ, start_response):
        kind = PATHS.get(environ["PATH_INFO"])
        if kind is None:  # /debug/pprof/profile, goroutine...: what a Go program has and hakwatch has not
            return _text(start_response, "404 Not Found", "no such profile here: allocs, heap or churn")
        pid = parse_qs(environ.get("QUERY_STRING", "")).get("pid", [""])[0]
        watched = sorted(k.value for k in self.probes.table("targets").keys())
        if pid and (not (pid.isascii() and pid.isdigit()) or int(pid) not in watched):
            return _text(start_response, "404 Not Found", f"pid {pid!r} is not watched")
        try:
            rows = read(self.probes, kind)  # one walk of the maps for every process
            with self.lock:
                profiles = [build(self.probes, RemoteSymbols(self.symbolizer, p), kind, self.start_ns, rows.get(p, {}))
                            for p in ([int(pid)] if pid else watched)]
        except HakwatchError as e:
            return _text(start_response, "503 Service Unavailable", str(e))
        body = to_pprof(merge(profiles, kind, self.start_ns))
        start_response("200 OK", [("Content-Type", "application/octet-stream"),
                                  ("Content-Disposition", f'attachment; filename="{kind}.pb.gz"')])
        return [body]

    def close(self):
        self.symbolizer.close()


def _text(start_response, status: str, line: str):
    start_response(status, [("Content-Type", "text/plain; charset=utf-8")])
    return [line.encode() + b"\n"]
