"""The HTTP endpoint (/metrics, /debug/pprof/* with --profile, and a landing page at /) and the
privilege drop that precedes it.

A thread per connection, at most MAX_CONNECTIONS at once (more are closed at once), each given
CONNECTION_TIMEOUT_S to say what it wants (and, with TLS, to shake hands, in its own thread): idle or
slow clients cannot keep Prometheus out. TLS and basic auth come from --web.config.file (webconfig.py).
"""

import errno
import os
import pwd
import socket
import ssl
import threading
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app

from hakwatch.errors import HakwatchError

LANDING = b"""<!doctype html><html><head><title>hakwatch</title></head><body>
<h1>hakwatch</h1><p>eBPF metrics of the hakmem allocator and the memory syscalls it causes.</p>
<p><a href="metrics">/metrics</a></p></body></html>
"""


PPROF_LINKS = b"""<p>Profiles (pprof, every watched process; ?pid=PID for one): <a href="debug/pprof/allocs">allocs</a>,
<a href="debug/pprof/heap">heap</a>, <a href="debug/pprof/churn">churn</a></p>
"""


def parse_listen(listen: str) -> tuple[str, int]:
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise HakwatchError(f"--listen {listen!r}: expected HOST:PORT, e.g. 127.0.0.1:10464", status=2)
    return host.strip("[]") or "0.0.0.0", int(port)


MAX_CONNECTIONS = 512
CONNECTION_TIMEOUT_S = 10.0


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    tls: ssl.SSLContext | None = None

    def server_activate(self):
        super().server_activate()
        self.slots = threading.BoundedSemaphore(MAX_CONNECTIONS)

    def get_request(self):
        sock, addr = self.socket.accept()
        sock.settimeout(CONNECTION_TIMEOUT_S)
        if self.tls:  # the handshake happens in the connection's thread, not in the accept loop
            sock = self.tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return sock, addr

    def process_request(self, request, client_address):
        if not self.slots.acquire(blocking=False):
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request, client_address):
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.slots.release()

    def handle_error(self, request, client_address):
        pass  # a client that hung up, timed out or spoke plain HTTP to TLS: its problem, not a traceback


class _QuietHandler(WSGIRequestHandler):
    def setup(self):
        if isinstance(self.request, ssl.SSLSocket):
            self.request.do_handshake()
        super().setup()

    def log_message(self, *args):
        pass


class MetricsServer:
    """Bound at construction (as root, so a privileged port works and errors come before attaching
    anything long-lived); serving starts with `start()` on a daemon thread."""

    def __init__(self, listen: str, collector, web=None, pprof=None):
        """`pprof`: the /debug/pprof endpoints (hakwatch/export/pprof_http.py), or None."""
        host, port = parse_listen(listen)
        self.pprof = pprof
        registry = CollectorRegistry(auto_describe=False)
        registry.register(collector)
        metrics_app = make_wsgi_app(registry)

        def app(environ, start_response):
            if web is not None and not web.authorized(environ.get("HTTP_AUTHORIZATION")):
                start_response("401 Unauthorized", [("Content-Type", "text/plain; charset=utf-8"),
                                                    ("WWW-Authenticate", 'Basic realm="hakwatch"')])
                return [b"Unauthorized\n"]
            path = environ.get("PATH_INFO", "/")
            if path in ("/", ""):
                start_response("200 OK", [("Content-Type", "text/html; charset=utf-8")])
                return [LANDING if pprof is None else LANDING.replace(b"</body>", PPROF_LINKS + b"</body>")]
            if pprof is not None and path.startswith("/debug/pprof/"):
                return pprof(environ, start_response)
            return metrics_app(environ, start_response)

        _Server.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        try:
            self.httpd = make_server(host, port, app, server_class=_Server, handler_class=_QuietHandler)
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                raise HakwatchError(f"cannot listen on {listen}: the port is in use (choose another with --listen)") from None
            raise HakwatchError(f"cannot listen on {listen}: {e.strerror}") from None
        self.httpd.tls = web.tls if web is not None else None
        self.address = f"{host}:{self.httpd.server_port}"
        self.scheme = "https" if self.httpd.tls else "http"

    def start(self):
        self.serving = True
        # shutdown() waits for the loop to look at its flag: every 0.1 s, not the default 0.5 s, so
        # `hakwatch run` ends soon after its command does.
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.1}, name="metrics",
                         daemon=True).start()

    def stop(self):
        if getattr(self, "serving", False):  # shutdown() waits for serve_forever, which may never have run
            self.httpd.shutdown()
        self.httpd.server_close()

    def close(self):
        """Stop, and end the profiles' symbol helper."""
        self.stop()
        if self.pprof is not None:
            self.pprof.close()


def drop_privileges(user: str):
    """Become `user` with no capabilities: reading BPF maps through the fds already open needs none."""
    if os.geteuid() != 0:
        return
    try:
        pw = pwd.getpwnam(user)
    except KeyError:
        raise HakwatchError(f"--user {user!r}: no such user") from None
    os.setgroups([])
    os.setgid(pw.pw_gid)
    os.setuid(pw.pw_uid)  # from root to a non-root uid: every capability goes too
