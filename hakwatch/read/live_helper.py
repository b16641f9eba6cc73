"""Live readings for an unprivileged server (hakwatch/read/live.py): reading another user's memory needs
root, and hakwatch's HTTP server never runs as root. So a helper, forked while hakwatch is still root,
reads the watched processes' memory at each scrape and answers with their counts. The server names
only pids (of its targets map): where to read, and what, the helper finds itself in each process's
libhakmem, so a compromised server cannot make it read anything else.
"""

import os
import socket
import struct
import sys
import threading
from array import array

from hakwatch.helper_ipc import become_helper, end_helper, recv_frame, recv_json, send_frame, send_json
from hakwatch.contract.layout import load, words

UNCHANGED, READ = 0, 1
ENTRY = struct.Struct("<II")  # pid, UNCHANGED or READ (then the counters block's words)


class LiveHelper:
    """The server's end: `read(images) -> {pid: words}`, as LiveReadings answers it."""

    def __init__(self):
        ours, theirs = socket.socketpair()
        self.pid = os.fork()
        if self.pid == 0:
            ours.close()
            _helper(theirs)
        theirs.close()
        self.sock = ours
        self.lock = threading.Lock()  # scrapes come from a thread per connection: one question at a time
        self.last: dict[int, list[int]] = {}  # an unchanged reading is handed on as the same list
        self.gone = False

    def read(self, images: dict[int, int]) -> dict[int, list[int]]:
        """Readings of these processes; none at all once the helper is gone (said once): the Reader
        then keeps their last readings until they exit."""
        with self.lock:
            if self.gone:
                return {}
            try:
                send_json(self.sock, sorted(images.items()))
                reply = recv_frame(self.sock)
            except OSError:
                reply = None
            if reply is None:
                self.gone = True
                print("hakwatch: the memory-reading helper ended: live counts are as of the processes' "
                      "last flushes from now on", file=sys.stderr, flush=True)
                return {}
            n, out, at = words(), {}, 0
            while at < len(reply):
                pid, kind = ENTRY.unpack_from(reply, at)
                at += ENTRY.size
                if kind == READ:
                    self.last[pid] = array("Q", reply[at:at + 8 * n]).tolist()
                    at += 8 * n
                out[pid] = self.last[pid]
            self.last = {pid: w for pid, w in self.last.items() if pid in out}
            return out

    def close(self):
        end_helper(self.sock, self.pid)


def _helper(sock: socket.socket):
    """The helper's loop (never returns: whatever happens, the child must not go on as the server)."""
    status = 0
    try:
        from hakwatch.read.live import LiveReadings
        become_helper({sock.fileno()})
        readings, sent = LiveReadings(load()), {}
        while True:
            ask = recv_json(sock)
            if ask is None:
                break
            got = readings.read({pid: inits for pid, inits in ask})
            reply = bytearray()
            for pid, words_ in got.items():
                if sent.get(pid) is words_:
                    reply += ENTRY.pack(pid, UNCHANGED)
                else:
                    reply += ENTRY.pack(pid, READ) + array("Q", words_).tobytes()
            sent = got
            send_frame(sock, bytes(reply))
    except Exception:
        status = 70
    finally:
        os._exit(status)
