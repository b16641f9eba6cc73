"""Live readings for an unprivileged server (hakwatch/read/live.py): reading another user's memory needs
root, and hakwatch's HTTP server never runs as root. So a helper, forked while hakwatch is still root,
reads the watched processes' memory at each scrape and answers with their counts. The server names
only pids, and the helper reads only those of its targets map (the same kernel map the server reads):
where to read, and what, it finds itself in each process's libhakmem, so a compromised server can make
it read nothing else.
"""

import socket
import struct
import sys
import threading
from array import array

from hakwatch.contract.layout import load, words
from hakwatch.helper_ipc import end_helper, recv_frame, recv_json, send_frame, send_json, start_helper

UNCHANGED, READ = 0, 1
ENTRY = struct.Struct("<IIII")  # pid, UNCHANGED or READ (then the counters block's words), fresh, hidden
RUNTIMES = ("", "pymalloc")    # hidden, by index: what the process's runtime keeps from libhakmem
ANSWER_S = 10.0  # a reading that takes longer (a process stuck in the kernel holding its memory's lock)


class LiveHelper:
    """The server's end: `read(images) -> {pid: (words, fresh, hidden_by)}`, as LiveReadings answers it."""

    def __init__(self, probes):
        targets = probes.table("targets")
        ours, self.pid = start_helper(lambda sock: _serve(sock, targets), keep={targets.map_fd})
        ours.settimeout(ANSWER_S)
        self.sock = ours
        self.lock = threading.Lock()  # scrapes come from a thread per connection: one question at a time
        self.last: dict[int, list[int]] = {}  # an unchanged reading is handed on as the same list
        self.gone = False

    def read(self, images: dict[int, int]) -> dict[int, tuple[list[int], bool, str]]:
        """Readings of these processes; none at all once the helper is gone or stuck (said once): the
        Reader then shows their flushes."""
        with self.lock:
            if self.gone:
                return {}
            try:
                send_json(self.sock, sorted(images.items()))
                reply = recv_frame(self.sock)
            except OSError:  # a timeout too: the answer would come out of step with the questions
                reply = None
            if reply is None:
                self.gone = True
                print("hakwatch: the memory-reading helper ended or stopped answering: live counts are as of "
                      "the processes' flushes from now on", file=sys.stderr, flush=True)
                return {}
            n, out, at = words(), {}, 0
            while at < len(reply):
                pid, kind, fresh, hidden = ENTRY.unpack_from(reply, at)
                at += ENTRY.size
                if kind == READ:
                    self.last[pid] = array("Q", reply[at:at + 8 * n]).tolist()
                    at += 8 * n
                out[pid] = (self.last[pid], bool(fresh), RUNTIMES[hidden])
            self.last = {pid: w for pid, w in self.last.items() if pid in out}
            return out

    def close(self):
        end_helper(self.sock, self.pid)


def _serve(sock: socket.socket, targets):
    """The helper's loop, until the server's end of the socket closes."""
    from hakwatch.read.live import LiveReadings

    readings, sent = LiveReadings(load()), {}
    while True:
        ask = recv_json(sock)
        if ask is None:
            return
        watched = {k.value: v.inits for k, v in targets.items()}
        images = {pid: inits for pid, inits in ask
                  if type(pid) is int and type(inits) is int and watched.get(pid) == inits}
        got = readings.read(images)
        reply = bytearray()
        for pid, (words_, fresh, hidden) in got.items():
            runtime = RUNTIMES.index(hidden)
            if sent.get(pid) is words_:
                reply += ENTRY.pack(pid, UNCHANGED, fresh, runtime)
            else:
                reply += ENTRY.pack(pid, READ, fresh, runtime) + array("Q", words_).tobytes()
        sent = {pid: w for pid, (w, _, _) in got.items()}
        send_frame(sock, bytes(reply))
