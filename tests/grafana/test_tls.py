"""--web.config.file end to end: a real Prometheus scrapes hakwatch over TLS with basic auth; a wrong
password or none gets 401, plain HTTP to the TLS listener gets no page, and scrapes are answered while
200 idle connections are open."""

import http.client
import os
import socket
import ssl
import subprocess
import urllib.error
import urllib.request

import bcrypt
import pytest
from certs import make_cert
from hakwatch_helpers import Hakwatch, wait_for

USER, PASSWORD = "prometheus", "s3cret-for-tests"


def get(url, context=None, password=PASSWORD):
    req = urllib.request.Request(url)
    if password is not None:
        import base64
        req.add_header("Authorization", "Basic " + base64.b64encode(f"{USER}:{password}".encode()).decode())
    with urllib.request.urlopen(req, timeout=5, context=context) as r:
        return r.status, r.read().decode()


@pytest.fixture
def secured(tmp_path, libhakmem, programs):
    if os.geteuid() != 0:
        pytest.skip("hakwatch attaches BPF programs: it needs root")
    crt, key = make_cert(tmp_path)
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(10)).decode()
    web = tmp_path / "web.yml"
    web.write_text(f"tls_server_config:\n  cert_file: {crt}\n  key_file: {key}\nbasic_auth_users:\n  {USER}: '{hashed}'\n")
    workload = subprocess.Popen([programs["superslab_churn"], "120"], env=dict(os.environ, LD_PRELOAD=str(libhakmem)))
    h = Hakwatch(["attach", "--lib", str(libhakmem), "--web.config.file", str(web)])
    context = ssl.create_default_context(cafile=str(crt))
    url = f"https://127.0.0.1:{h.port}/metrics"
    try:
        def up():
            if h.proc.poll() is not None:
                raise AssertionError(f"hakwatch exited {h.proc.returncode}: {h.proc.stderr.read()}")
            try:
                return get(url, context)[1]
            except OSError:
                return None
        wait_for(up, 30, "hakwatch to serve over TLS")
        yield {"url": url, "context": context, "crt": crt, "port": h.port, "tmp": tmp_path}
    finally:
        h.stop()
        workload.kill()
        workload.wait()


def test_wrong_or_no_password_is_401_and_plain_http_gets_no_page(secured):
    url, context = secured["url"], secured["context"]
    assert get(url, context)[0] == 200
    for password in ("wrong", None):
        with pytest.raises(urllib.error.HTTPError) as e:
            get(url, context, password)
        assert e.value.code == 401 and e.value.headers["WWW-Authenticate"].startswith("Basic")
    # plain HTTP: the handshake fails on "GET" and the server hangs up without sending a byte. A page
    # (HTTPError, or BadStatusLine for one not in HTTP), a timeout or a refused connection is not that.
    with pytest.raises(http.client.RemoteDisconnected):
        get(url.replace("https://", "http://"))


def test_scrapes_are_answered_while_200_idle_connections_are_open(secured):
    idle = [socket.create_connection(("127.0.0.1", secured["port"])) for _ in range(200)]
    try:
        status, text = get(secured["url"], secured["context"])
        assert status == 200 and "hakwatch_targets" in text
    finally:
        for s in idle:
            s.close()


def test_prometheus_scrapes_over_tls_with_basic_auth(secured, prometheus):
    prom = prometheus(secured["tmp"], f"127.0.0.1:{secured['port']}", scheme="https",
                      tls_config={"ca_file": str(secured["crt"])}, basic_auth={"username": USER, "password": PASSWORD})
    wait_for(lambda: prom.query('up{job="hakwatch"} == 1'), 60, "Prometheus to scrape hakwatch over TLS")
    wait_for(lambda: prom.query("hakmem_allocs_total"), 60, "hakmem series in Prometheus")
