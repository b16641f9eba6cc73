"""--web.config.file (hakwatch/export/webconfig.py): exporter-toolkit's format is read as node_exporter reads
it, everything hakwatch does not do is refused by name, and basic auth checks bcrypt hashes."""

import base64
import ssl

import bcrypt
import pytest
from certs import make_cert

from hakwatch.errors import HakwatchError
from hakwatch.export.webconfig import load


def basic(user, password):
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.fixture(scope="module")
def cert(tmp_path_factory):
    return make_cert(tmp_path_factory.mktemp("tls"))


def config(tmp_path, text):
    path = tmp_path / "web.yml"
    path.write_text(text)
    return path


def test_tls_and_users(tmp_path, cert):
    crt, key = cert
    hashed = bcrypt.hashpw(b"s3cret", bcrypt.gensalt(4)).decode()
    web = load(config(tmp_path, f"tls_server_config:\n  cert_file: {crt}\n  key_file: {key}\n  min_version: TLS13\n"
                                f"basic_auth_users:\n  prometheus: '{hashed}'\n"))
    assert web.tls.minimum_version == ssl.TLSVersion.TLSv1_3 and web.tls.verify_mode == ssl.CERT_NONE
    assert web.authorized(basic("prometheus", "s3cret"))
    assert web.authorized(basic("prometheus", "s3cret")), "the second time from the cache"
    assert not web.authorized(basic("prometheus", "wrong"))
    assert not web.authorized(basic("nobody", "s3cret"))
    assert not web.authorized(None) and not web.authorized("Basic !!!") and not web.authorized("Bearer x")


def test_relative_paths_and_client_ca(tmp_path):
    crt, key = make_cert(tmp_path)
    web = load(config(tmp_path, "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
                                "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: server.crt\n"))
    assert web.tls.verify_mode == ssl.CERT_REQUIRED and not web.users
    assert web.authorized(None), "no users: no basic auth"


@pytest.mark.parametrize("text, says", [
    ("basic_auth_users:\n  a: plain\n", "not a bcrypt hash"),
    ("http_server_config:\n  http2: true\n", "http_server_config: not supported"),
    ("tls_server_config:\n  cert_file: /nonexistent.crt\n  key_file: /nonexistent.key\n", "cannot load the certificate"),
    ("tls_server_config:\n  key_file: x.key\n", "needs a certificate and a key"),
    ("tls_server_config:\n  cert_file: CRT\n  key_file: KEY\n  client_auth_type: RequireAnyClientCert\n  client_ca_file: CRT\n",
     "RequireAnyClientCert"),
    ("tls_server_config:\n  cert_file: CRT\n  key_file: KEY\n  client_ca_file: CRT\n", "without a client_auth_type"),
    ("tls_server_config:\n  cert_file: CRT\n  key_file: KEY\n  cipher_suites: [x]\n", "cipher_suites: not supported"),
    ("tls_server_config:\n  cert_file: CRT\n  key_file: KEY\n  min_version: TLS9\n", "min_version"),
    ("[1, 2\n", "not valid YAML"),
    ("- a\n", "expected a mapping"),
])
def test_what_is_refused(tmp_path, cert, text, says):
    crt, key = cert
    with pytest.raises(HakwatchError) as e:
        load(config(tmp_path, text.replace("CRT", str(crt)).replace("KEY", str(key))))
    assert says in str(e.value) and str(e.value).startswith("--web.config.file ")


def test_a_missing_file(tmp_path):
    with pytest.raises(HakwatchError, match="No such file"):
        load(tmp_path / "absent.yml")
