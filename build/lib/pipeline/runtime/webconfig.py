"""TLS and basic authentication for the project's HTTP servers, from a web config file in the format of the
Prometheus exporters' `--web.config.file` (prometheus/exporter-toolkit), so operators reuse what they know:

```yaml
tls_server_config:              # optional: serve HTTPS
  cert_file: server.pem         # paths relative to this file's directory
  key_file: server.key
  client_ca_file: clients.pem   # optional, with client_auth_type
  client_auth_type: RequireAndVerifyClientCert
  min_version: TLS12
basic_auth_users:               # optional: user -> bcrypt hash (`htpasswd -nBC 10 "" | tr -d ':\\n'`)
  prometheus: $2y$10$...
http_server_config:
  headers: {X-Frame-Options: deny}
```

`load_web_config(path)` reads and checks the file (a problem is one sentence, at start) and returns the server's
`ssl.SSLContext` (or None) and an aiohttp middleware that answers 401 without valid credentials. The worker's
HTTP server uses both (`pipeline.runtime.app`); any other aiohttp server of the project can, in two lines:

    web_config = load_web_config(settings.web_config_file)
    app = aiohttp.web.Application(middlewares=[web_config.middleware(open_paths=...)])
    ... aiohttp.web.TCPSite(runner, host, port, ssl_context=web_config.ssl_context)

A bcrypt check costs tens of milliseconds, so it runs off the event loop, and a password once accepted is
remembered (by its SHA-256, never in clear) as exporter-toolkit does: a scrape every few seconds costs nothing.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import ssl
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bcrypt
import yaml
from aiohttp import web
from aiohttp.typedefs import Middleware

from pipeline.core.settings import ENV_PREFIX, SettingsError

CLIENT_AUTH_TYPES = {
    "NoClientCert": ssl.CERT_NONE,
    "RequestClientCert": ssl.CERT_OPTIONAL,
    "RequireAnyClientCert": ssl.CERT_REQUIRED,
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
}
TLS_VERSIONS = {
    "TLS10": ssl.TLSVersion.TLSv1,
    "TLS11": ssl.TLSVersion.TLSv1_1,
    "TLS12": ssl.TLSVersion.TLSv1_2,
    "TLS13": ssl.TLSVersion.TLSv1_3,
}
_KNOWN = {
    "": {"tls_server_config", "basic_auth_users", "http_server_config"},
    "tls_server_config": {
        "cert_file",
        "key_file",
        "client_ca_file",
        "client_auth_type",
        "min_version",
        "max_version",
        "cipher_suites",
        "curve_preferences",
        "prefer_server_cipher_suites",
        "client_allowed_sans",
    },
    "http_server_config": {"headers", "http2"},
}
# the hash checked when the user is unknown, so that a wrong user name takes as long as a wrong password
_DUMMY_HASH = b"$2b$10$ZFDCMVdwJVwpZJwzEpOepujFXgbyDuscx570pA1h/razlKNGkO02K"  # bcrypt of "not a password", cost 10
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class WebConfig:
    """What a web config file says: TLS (or None), basic-auth users (or none), extra response headers."""

    ssl_context: ssl.SSLContext | None = None
    users: dict[str, bytes] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    _accepted: set[tuple[str, bytes]] = field(default_factory=set, repr=False)

    @property
    def authenticates(self) -> bool:
        return bool(self.users)

    async def check(self, user: str, password: str) -> bool:
        """Is this user's password right? bcrypt off the event loop; an accepted pair is remembered hashed."""
        digest = hashlib.sha256(password.encode()).digest()
        if (user, digest) in self._accepted:
            return True
        hashed = self.users.get(user)
        ok = await asyncio.get_running_loop().run_in_executor(
            None, _bcrypt_ok, password.encode(), hashed if hashed is not None else _DUMMY_HASH
        )
        if ok and hashed is not None:
            if len(self._accepted) > 1000:  # bounded: a handful of scrapers in practice
                self._accepted.clear()
            self._accepted.add((user, digest))
            return True
        return False

    def middleware(self, open_paths: Iterable[str] = ()) -> Middleware:
        """An aiohttp middleware: 401 without valid basic-auth credentials (except on `open_paths`), and the
        configured headers on every answer."""
        open_set = frozenset(open_paths)

        @web.middleware
        async def protect(request: web.Request, handler: Handler) -> web.StreamResponse:
            if self.users and request.path not in open_set and not await self._authorized(request):
                response: web.StreamResponse = web.Response(
                    status=401,
                    text="Unauthorized\n",
                    headers={"WWW-Authenticate": 'Basic realm="cc-kpi-pipeline", charset="UTF-8"'},
                )
            else:
                response = await handler(request)
            response.headers.update(self.headers)
            return response

        return protect

    async def _authorized(self, request: web.Request) -> bool:
        header = request.headers.get("Authorization", "")
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, sep, password = base64.b64decode(encoded.strip(), validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        return bool(sep) and await self.check(user, password)


def _bcrypt_ok(password: bytes, hashed: bytes) -> bool:
    try:
        return bcrypt.checkpw(password[:72], hashed)  # bcrypt reads 72 bytes at most; bcrypt 5 refuses more
    except ValueError:
        return False


def _fail(path: Path, var: str, what: str) -> SettingsError:
    return SettingsError(f"{ENV_PREFIX}{var}={path}: {what}.")


def load_web_config(path: Path | None, var: str = "WEB_CONFIG_FILE") -> WebConfig:
    """Read a web config file (None: plain HTTP, no authentication). `var` names the setting in messages."""
    if path is None:
        return WebConfig()
    try:
        raw = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise _fail(path, var, f"cannot be read ({exc.strerror})") from None
    except yaml.YAMLError:
        raise _fail(path, var, "is not YAML") from None
    raw = raw or {}
    if not isinstance(raw, dict):
        raise _fail(path, var, "must be a YAML mapping (tls_server_config, basic_auth_users, http_server_config)")
    _no_unknown_keys(path, var, "", raw)
    base = path.parent
    config = WebConfig()

    users = raw.get("basic_auth_users") or {}
    if not isinstance(users, dict):
        raise _fail(path, var, "basic_auth_users must map user names to bcrypt hashes")
    for user, hashed in users.items():
        if not isinstance(hashed, str) or not hashed.startswith(("$2a$", "$2b$", "$2y$")):
            raise _fail(
                path, var, f"basic_auth_users.{user} is not a bcrypt hash (make one with `htpasswd -nBC 10 ''`)"
            )
        config.users[str(user)] = hashed.encode()

    http = raw.get("http_server_config") or {}
    if isinstance(http, dict):
        _no_unknown_keys(path, var, "http_server_config", http)
        config.headers = {str(k): str(v) for k, v in (http.get("headers") or {}).items()}

    tls = raw.get("tls_server_config")
    if tls:
        if not isinstance(tls, dict):
            raise _fail(path, var, "tls_server_config must be a mapping")
        _no_unknown_keys(path, var, "tls_server_config", tls)
        config.ssl_context = _server_context(path, var, base, tls)
    return config


def _no_unknown_keys(path: Path, var: str, section: str, raw: dict) -> None:
    unknown = sorted(set(map(str, raw)) - _KNOWN[section])
    if unknown:
        where = f"{section}." if section else ""
        raise _fail(path, var, f"unknown field {where}{unknown[0]} (known: {', '.join(sorted(_KNOWN[section]))})")


def _server_context(path: Path, var: str, base: Path, tls: dict) -> ssl.SSLContext:
    def file(key: str) -> str:
        value = tls.get(key)
        if not value:
            raise _fail(path, var, f"tls_server_config.{key} is required")
        full = (base / str(value)).resolve()
        if not full.is_file():
            raise _fail(path, var, f"tls_server_config.{key}: no such file {full}")
        return str(full)

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(file("cert_file"), file("key_file"))
    except ssl.SSLError:
        raise _fail(
            path, var, "tls_server_config.cert_file and key_file are not a PEM certificate and its key"
        ) from None
    auth = str(tls.get("client_auth_type") or "NoClientCert")
    if auth not in CLIENT_AUTH_TYPES:
        raise _fail(path, var, f"tls_server_config.client_auth_type: allowed: {', '.join(CLIENT_AUTH_TYPES)}")
    if tls.get("client_ca_file"):
        context.load_verify_locations(file("client_ca_file"))
    elif auth != "NoClientCert":  # Python's ssl checks every client certificate it asks for, so it needs the CA
        raise _fail(path, var, f"tls_server_config.client_auth_type {auth} needs client_ca_file")
    context.verify_mode = CLIENT_AUTH_TYPES[auth]
    for key, attr in (("min_version", "minimum_version"), ("max_version", "maximum_version")):
        if tls.get(key):
            if tls[key] not in TLS_VERSIONS:
                raise _fail(path, var, f"tls_server_config.{key}: allowed: {', '.join(TLS_VERSIONS)}")
            setattr(context, attr, TLS_VERSIONS[tls[key]])
    if not tls.get("min_version"):
        context.minimum_version = ssl.TLSVersion.TLSv1_2  # exporter-toolkit's default
    return context


def web_security(path: Path | None, open_paths: Iterable[str] = ()) -> tuple[ssl.SSLContext | None, Any]:
    """The two things an aiohttp server needs: its TLS context (or None) and the authentication middleware."""
    config = load_web_config(path)
    return config.ssl_context, config.middleware(open_paths)


def credentials_header(user: str, password: str) -> str:
    """An `Authorization` header value (for clients and tests)."""
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
