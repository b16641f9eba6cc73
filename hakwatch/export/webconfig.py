"""`--web.config.file`: the web configuration of Prometheus' exporter-toolkit (node_exporter's format):
TLS with an optional client CA, and basic-auth users with bcrypt hashes.

    tls_server_config:
      cert_file: /etc/hakwatch/hakwatch.crt     # or cert: <PEM text>
      key_file: /etc/hakwatch/hakwatch.key      # or key: <PEM text>
      client_auth_type: RequireAndVerifyClientCert   # with client_ca_file; default NoClientCert
      client_ca_file: /etc/hakwatch/prometheus-ca.crt
      min_version: TLS12                        # and max_version; TLS10 .. TLS13
    basic_auth_users:
      prometheus: $2y$10$...                    # htpasswd -nBC 10 "" | tr -d ':\\n'

Read once, as root, before hakwatch drops its privileges (key files are usually readable by root
only): restart hakwatch to pick up new certificates or users. Relative paths are relative to the
file's directory. Settings exporter-toolkit has and hakwatch does not (cipher_suites,
curve_preferences, HTTP/2, extra headers, client_auth_type values that do not verify the
certificate) are refused by name rather than ignored.
"""

import base64
import hashlib
import os
import ssl
import tempfile
import threading
from dataclasses import dataclass, field

from hakwatch.errors import HakwatchError

TLS_KEYS = {"cert_file", "key_file", "cert", "key", "client_auth_type", "client_ca_file", "min_version", "max_version"}
VERSIONS = {"TLS10": ssl.TLSVersion.TLSv1, "TLS11": ssl.TLSVersion.TLSv1_1, "TLS12": ssl.TLSVersion.TLSv1_2,
            "TLS13": ssl.TLSVersion.TLSv1_3}
CLIENT_AUTH = {"NoClientCert": ssl.CERT_NONE, "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
               "RequireAndVerifyClientCert": ssl.CERT_REQUIRED}


@dataclass
class WebConfig:
    tls: ssl.SSLContext | None = None
    users: dict[str, bytes] = field(default_factory=dict)  # user -> bcrypt hash
    _good: set = field(default_factory=set)                # (user, sha256 of password) already checked
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def authorized(self, header: str | None) -> bool:
        """An Authorization header against the users. bcrypt is slow on purpose (~50 ms a check at cost
        10): a password once verified is remembered by its SHA-256, as exporter-toolkit caches it."""
        if not self.users:
            return True
        if not header or not header.startswith("Basic "):
            return False
        try:
            user, _, password = base64.b64decode(header[6:], validate=True).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return False
        key = (user, hashlib.sha256(password.encode()).digest())
        with self._lock:
            if key in self._good:
                return True
        import bcrypt
        hashed = self.users.get(user)
        # an unknown user costs as much as a wrong password, so that timing tells no names
        ok = bcrypt.checkpw(password.encode(), hashed or next(iter(self.users.values()))) and hashed is not None
        if ok:
            with self._lock:
                self._good.add(key)
        return ok


def _path(base: str, value) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError("expected a file name")
    return value if os.path.isabs(value) else os.path.join(base, value)


def _tls_context(base: str, tls: dict) -> ssl.SSLContext:
    unknown = set(tls) - TLS_KEYS
    if unknown:
        raise ValueError(f"tls_server_config: {', '.join(sorted(unknown))}: not supported by hakwatch")
    if ("cert" in tls) == ("cert_file" in tls) or ("key" in tls) == ("key_file" in tls):
        raise ValueError("tls_server_config needs a certificate and a key: cert_file or cert, key_file or key")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    for key, attr in (("min_version", "minimum_version"), ("max_version", "maximum_version")):
        if key in tls:
            if tls[key] not in VERSIONS:
                raise ValueError(f"tls_server_config: {key} {tls[key]!r}: one of {', '.join(VERSIONS)}")
            setattr(ctx, attr, VERSIONS[tls[key]])
    with tempfile.TemporaryDirectory() as tmp:  # inline PEM: ssl loads chains from files only
        files = {}
        for kind in ("cert", "key"):
            if kind in tls:
                files[kind] = os.path.join(tmp, kind)
                with open(os.open(files[kind], os.O_WRONLY | os.O_CREAT, 0o600), "w") as f:
                    f.write(tls[kind])
            else:
                files[kind] = _path(base, tls[f"{kind}_file"])
        try:
            ctx.load_cert_chain(files["cert"], files["key"])
        except (ssl.SSLError, OSError) as e:
            raise ValueError(f"cannot load the certificate and key ({getattr(e, 'strerror', None) or e})") from None
    policy = tls.get("client_auth_type", "NoClientCert")
    if policy not in CLIENT_AUTH:
        raise ValueError(f"tls_server_config: client_auth_type {policy!r}: hakwatch supports "
                         f"{', '.join(CLIENT_AUTH)} (the others accept certificates they do not verify)")
    if "client_ca_file" in tls:
        if policy == "NoClientCert":
            raise ValueError("tls_server_config: client_ca_file without a client_auth_type that verifies it")
        try:
            ctx.load_verify_locations(cafile=_path(base, tls["client_ca_file"]))
        except (ssl.SSLError, OSError) as e:
            raise ValueError(f"cannot load client_ca_file ({getattr(e, 'strerror', None) or e})") from None
    elif policy != "NoClientCert":
        raise ValueError(f"tls_server_config: client_auth_type {policy} needs client_ca_file")
    ctx.verify_mode = CLIENT_AUTH[policy]
    return ctx


def load(path: str) -> WebConfig:
    import yaml

    try:
        with open(path) as f:
            doc = yaml.safe_load(f) or {}
    except OSError as e:
        raise HakwatchError(f"--web.config.file {path}: {e.strerror}") from None
    except yaml.YAMLError as e:
        raise HakwatchError(f"--web.config.file {path}: not valid YAML ({str(e).splitlines()[0]})") from None
    try:
        if not isinstance(doc, dict):
            raise ValueError("expected a mapping")
        unknown = set(doc) - {"tls_server_config", "basic_auth_users"}
        if unknown:
            raise ValueError(f"{', '.join(sorted(unknown))}: not supported by hakwatch")
        base = os.path.dirname(os.path.abspath(path))
        config = WebConfig()
        if doc.get("tls_server_config"):
            config.tls = _tls_context(base, doc["tls_server_config"])
        users = doc.get("basic_auth_users") or {}
        if not isinstance(users, dict):
            raise ValueError("basic_auth_users: expected user: bcrypt hash")
        for user, hashed in users.items():
            if not isinstance(hashed, str) or not hashed.startswith(("$2a$", "$2b$", "$2y$")):
                raise ValueError(f"basic_auth_users: {user}: not a bcrypt hash")
            config.users[str(user)] = hashed.encode()
        return config
    except ValueError as e:
        raise HakwatchError(f"--web.config.file {path}: {e}") from None
