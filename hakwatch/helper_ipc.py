"""What hakwatch's root helpers share (hakwatch/profile/symbolizer.py, hakwatch/read/live_helper.py): each is forked
while hakwatch is still root, keeps nothing but its end of a socket pair, and answers the unprivileged
server's questions on it in length-prefixed frames (OpenSSH's privilege separation, in small)."""

import ctypes as ct
import json
import os
import signal
import socket
import struct
import time


def send_frame(sock: socket.socket, data: bytes):
    sock.sendall(struct.pack("<I", len(data)) + data)


def recv_frame(sock: socket.socket) -> bytes | None:
    head = _exactly(sock, 4)
    return _exactly(sock, struct.unpack("<I", head)[0]) if head else None


def send_json(sock: socket.socket, obj):
    send_frame(sock, json.dumps(obj).encode())


def recv_json(sock: socket.socket):
    frame = recv_frame(sock)
    return json.loads(frame) if frame is not None else None


def _exactly(sock: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        part = sock.recv(n - len(buf))
        if not part:
            return b""
        buf += part
    return buf


def start_helper(serve, keep: set[int]) -> tuple[socket.socket, int]:
    """Fork a helper that runs `serve(sock)` until the server's end of the socket closes: the server's
    end and the helper's pid. Whatever happens in the child (an exception, a signal that came before it
    was ready), it never returns into the server's code."""
    ours, theirs = socket.socketpair()
    pid = os.fork()
    if pid == 0:
        status = 70
        try:
            ours.close()
            _become_helper(keep | {theirs.fileno()})
            serve(theirs)
            status = 0
        except BaseException:
            pass
        finally:
            os._exit(status)
    theirs.close()
    return ours, pid


def _become_helper(keep: set[int]):
    """In the forked child: end with the server, leave Ctrl-C to it, and close every descriptor but
    stdio and `keep` (the probes' descriptors above all: a detach must not wait for the helper)."""
    ct.CDLL(None).prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for fd in map(int, os.listdir("/proc/self/fd")):
        if fd > 2 and fd not in keep:
            try:
                os.close(fd)
            except OSError:
                pass


def end_helper(sock: socket.socket, pid: int):
    """The helper sees the end of its socket and exits; waited for a moment only (it dies with
    hakwatch anyway, and a helper stuck in /proc must not keep hakwatch from detaching)."""
    sock.close()
    deadline = time.monotonic() + 1.0
    try:
        while not os.waitpid(pid, os.WNOHANG)[0] and time.monotonic() < deadline:
            time.sleep(0.02)
    except ChildProcessError:
        pass
