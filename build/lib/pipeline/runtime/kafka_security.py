"""The one place that turns the Kafka security settings (`PIPELINE_KAFKA_*`) into the clients' own objects.

Every Kafka client the project makes goes through here: the worker's Faust app (`faust_credentials`), and every
aiokafka producer, consumer, admin and metadata client (`client_options`): the simulator's and replay's producer,
replay's and the bench's readers, topic set-up, the start-up wait and the health probe. Adapters and receivers
that write to Kafka use `client_options` too.

Problems that retrying cannot fix stop the command at start with one sentence naming the setting to change
(`SettingsError`, exit status 2): a file that is missing or not PEM, a broker certificate the CA does not sign or
that names another host, a broker that does not speak TLS, a login the broker refuses. Secrets stay in
`SecretStr` until they are handed to the client, and no message here ever contains one.
"""

from __future__ import annotations

import asyncio
import ssl
import struct
import time
from pathlib import Path
from typing import Any

from aiokafka import errors as kafka_errors
from aiokafka.abc import AbstractTokenProvider
from faust.auth import OAuthCredentials, SASLCredentials, SSLCredentials
from faust.types.auth import CredentialsT

from pipeline.core.settings import ENV_PREFIX, Settings, SettingsError

# A token printed by PIPELINE_KAFKA_OAUTH_TOKEN_COMMAND is reused this long (aiokafka asks at every new
# connection, and a worker opens several at once); identity providers' tokens live minutes to hours.
TOKEN_REUSE_SECONDS = 60.0
TOKEN_COMMAND_TIMEOUT_SECONDS = 30.0


def uses_tls(settings: Settings) -> bool:
    return settings.kafka_security_protocol in ("SSL", "SASL_SSL")


def uses_sasl(settings: Settings) -> bool:
    return settings.kafka_security_protocol.startswith("SASL_")


def _readable(var: str, path: Path) -> Path:
    if not path.is_file():
        raise SettingsError(f"{ENV_PREFIX}{var}={path}: no such file; set it to a readable PEM file.")
    return path


def ssl_context(settings: Settings) -> ssl.SSLContext | None:
    """The TLS context of every client, or None without TLS. A missing or unreadable file is a SettingsError."""
    if not uses_tls(settings):
        return None
    ca = settings.kafka_ssl_ca_file
    try:
        context = ssl.create_default_context(
            ssl.Purpose.SERVER_AUTH, cafile=str(_readable("KAFKA_SSL_CA_FILE", ca)) if ca else None
        )
    except ssl.SSLError:
        raise SettingsError(
            f"{ENV_PREFIX}KAFKA_SSL_CA_FILE={ca}: holds no PEM certificate; set it to the CA that signed the brokers'."
        ) from None
    context.check_hostname = settings.kafka_ssl_check_hostname
    cert, key = settings.kafka_ssl_cert_file, settings.kafka_ssl_key_file
    if cert is not None and key is not None:
        password = settings.kafka_ssl_key_password
        try:
            context.load_cert_chain(
                str(_readable("KAFKA_SSL_CERT_FILE", cert)),
                str(_readable("KAFKA_SSL_KEY_FILE", key)),
                password=password.get_secret_value() if password else None,
            )
        except ssl.SSLError:
            raise SettingsError(
                f"{ENV_PREFIX}KAFKA_SSL_CERT_FILE={cert} and {ENV_PREFIX}KAFKA_SSL_KEY_FILE={key} are not a PEM"
                f" certificate and its key (or {ENV_PREFIX}KAFKA_SSL_KEY_PASSWORD is wrong)."
            ) from None
    return context


class TokenFromFile(AbstractTokenProvider):
    """OAUTHBEARER token read from a file at every new connection (a sidecar or the platform renews the file)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    async def token(self) -> str:
        try:
            text = self.path.read_text().strip()
        except OSError as exc:
            raise RuntimeError(
                f"{ENV_PREFIX}KAFKA_OAUTH_TOKEN_FILE={self.path}: cannot be read ({exc.strerror})"
            ) from None
        if not text:
            raise RuntimeError(f"{ENV_PREFIX}KAFKA_OAUTH_TOKEN_FILE={self.path} is empty")
        return text

    def __repr__(self) -> str:
        return f"TokenFromFile({self.path})"


class TokenFromCommand(AbstractTokenProvider):
    """OAUTHBEARER token printed by a command (run by `sh -c`), reused for `TOKEN_REUSE_SECONDS`."""

    def __init__(self, command: str, reuse_seconds: float = TOKEN_REUSE_SECONDS) -> None:
        self.command = command
        self.reuse_seconds = reuse_seconds
        self._token: str | None = None
        self._at = 0.0

    async def token(self) -> str:
        if self._token is not None and time.monotonic() - self._at < self.reuse_seconds:
            return self._token
        proc = await asyncio.create_subprocess_exec(
            "sh", "-c", self.command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL
        )
        try:
            out, _ = await asyncio.wait_for(proc.communicate(), TOKEN_COMMAND_TIMEOUT_SECONDS)
        except TimeoutError:
            proc.kill()
            raise RuntimeError(
                f"{ENV_PREFIX}KAFKA_OAUTH_TOKEN_COMMAND printed no token within {TOKEN_COMMAND_TIMEOUT_SECONDS:g} s"
            ) from None
        token = out.decode(errors="replace").strip()
        if proc.returncode != 0 or not token:
            raise RuntimeError(
                f"{ENV_PREFIX}KAFKA_OAUTH_TOKEN_COMMAND exited with status {proc.returncode} and printed no token"
            )
        self._token, self._at = token, time.monotonic()
        return token

    def __repr__(self) -> str:
        return "TokenFromCommand(...)"  # the command line may carry a client secret


def token_provider(settings: Settings) -> AbstractTokenProvider:
    if settings.kafka_oauth_token_file is not None:
        return TokenFromFile(_readable("KAFKA_OAUTH_TOKEN_FILE", settings.kafka_oauth_token_file))
    return TokenFromCommand(settings.kafka_oauth_token_command)


def client_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for any aiokafka client (producer, consumer, admin, `AIOKafkaClient`)."""
    options: dict[str, Any] = {"security_protocol": settings.kafka_security_protocol}
    context = ssl_context(settings)
    if context is not None:
        options["ssl_context"] = context
    if uses_sasl(settings):
        options["sasl_mechanism"] = settings.kafka_sasl_mechanism
        if settings.kafka_sasl_mechanism == "OAUTHBEARER":
            options["sasl_oauth_token_provider"] = token_provider(settings)
        else:
            password = settings.kafka_sasl_password
            options["sasl_plain_username"] = settings.kafka_sasl_username
            options["sasl_plain_password"] = password.get_secret_value() if password else None
    return options


def faust_credentials(settings: Settings) -> CredentialsT | None:
    """Faust's own credential object for the worker's app (`broker_credentials`); None for PLAINTEXT.

    Faust maps it onto the same aiokafka arguments as `client_options` (faust's `credentials_to_aiokafka_auth`)."""
    context = ssl_context(settings)
    if not uses_sasl(settings):
        return SSLCredentials(context) if context is not None else None
    if settings.kafka_sasl_mechanism == "OAUTHBEARER":
        return OAuthCredentials(oauth_cb=token_provider(settings), ssl_context=context)
    password = settings.kafka_sasl_password
    return SASLCredentials(
        username=settings.kafka_sasl_username,
        password=password.get_secret_value() if password else None,
        ssl_context=context,
        mechanism=settings.kafka_sasl_mechanism,
    )


def check_files(settings: Settings) -> None:
    """Every file the Kafka security settings name exists and parses: call at start, before any connection."""
    ssl_context(settings)
    if uses_sasl(settings) and settings.kafka_sasl_mechanism == "OAUTHBEARER":
        token_provider(settings)


def _host_port(address: str) -> tuple[str, int]:
    host, _, port = address.strip().rpartition(":")
    return (host.strip("[]") or address, int(port)) if port.isdigit() else (address.strip(), 9092)


async def check_tls(settings: Settings, bootstrap: str, timeout: float = 10.0) -> None:
    """A TLS handshake with each bootstrap address: a certificate the CA does not sign, one for another host, or a
    broker that does not speak TLS is a SettingsError; a broker not answering yet is left to the caller's retries.

    aiokafka logs such failures and retries for ever ("Unable to bootstrap"), so they are caught here first."""
    context = ssl_context(settings)
    if context is None:
        return
    for address in bootstrap.split(","):
        host, port = _host_port(address)
        try:  # first plain TCP: a broker not listening yet is "not yet", not a TLS problem
            _, tcp = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
            tcp.close()
        except (OSError, TimeoutError):
            continue
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(host, port, ssl=context, server_hostname=host), timeout
            )
        except ssl.SSLCertVerificationError as exc:
            raise SettingsError(
                f"Kafka at {host}:{port} presented a certificate that failed verification"
                f" ({exc.verify_message}): set {ENV_PREFIX}KAFKA_SSL_CA_FILE to the CA that signed it"
                + (
                    f", or connect by the name in its certificate ({ENV_PREFIX}BROKER_URL)."
                    if "mismatch" in (exc.verify_message or "")
                    else "."
                )
            ) from None
        except ssl.SSLError as exc:
            raise SettingsError(
                f"Kafka at {host}:{port} did not complete a TLS handshake ({exc.reason or exc}): is"
                f" {ENV_PREFIX}KAFKA_SECURITY_PROTOCOL={settings.kafka_security_protocol} right for this listener?"
            ) from None
        except TimeoutError:
            raise SettingsError(
                f"Kafka at {host}:{port} accepts connections but completed no TLS handshake within {timeout:g} s: is"
                f" {ENV_PREFIX}KAFKA_SECURITY_PROTOCOL={settings.kafka_security_protocol} right for this listener?"
            ) from None
        except OSError:
            continue  # went away between the two connections: the caller retries
        try:
            # In TLS 1.3 the server checks a client certificate after the client has finished its handshake: its
            # refusal arrives with the first answer. So ask for one (ApiVersions, allowed before any SASL login).
            writer.write(_API_VERSIONS_REQUEST)
            await asyncio.wait_for(reader.readexactly(4), timeout)
        except ssl.SSLError as exc:
            hint = (
                f"; it wants a client certificate: set {ENV_PREFIX}KAFKA_SSL_CERT_FILE and {ENV_PREFIX}KAFKA_SSL_KEY_FILE"
                if "certificate" in str(exc.reason or exc).lower()
                else ""
            )
            raise SettingsError(
                f"Kafka at {host}:{port} refused the TLS connection ({exc.reason or exc}){hint}."
            ) from None
        except (asyncio.IncompleteReadError, ConnectionResetError) as exc:
            if isinstance(exc, asyncio.IncompleteReadError) and exc.partial:
                continue
            # Kafka always answers ApiVersions: a close instead is how a listener that checks client certificates
            # says no (asyncio turns the TLS alert into a plain end of stream)
            cert = settings.kafka_ssl_cert_file
            raise SettingsError(
                f"Kafka at {host}:{port} closed the connection after the TLS handshake without answering: "
                + (
                    f"does it accept the client certificate {ENV_PREFIX}KAFKA_SSL_CERT_FILE={cert}?"
                    if cert
                    else f"it may want a client certificate: set {ENV_PREFIX}KAFKA_SSL_CERT_FILE and"
                    f" {ENV_PREFIX}KAFKA_SSL_KEY_FILE."
                )
            ) from None
        except (OSError, TimeoutError):
            pass  # reset or slow: the clients' own connection says more, and is retried
        finally:
            writer.close()
            try:
                await writer.wait_closed()
            except (OSError, ssl.SSLError):
                pass


def _api_versions_request() -> bytes:
    client_id = b"cc-kpi-tls-check"
    header = struct.pack(">hhih", 18, 0, 1, len(client_id)) + client_id  # ApiVersions v0, correlation id 1
    return struct.pack(">i", len(header)) + header


_API_VERSIONS_REQUEST = _api_versions_request()

_LOGIN_REFUSED = (
    kafka_errors.SaslAuthenticationFailed,
    kafka_errors.AuthenticationFailedError,
    kafka_errors.IllegalSaslStateError,
    KeyError,  # aiokafka's SCRAM client, when the broker's final message is an error instead of a signature
    ValueError,  # the same, when the server's nonce or signature is wrong
)


def login_failure(settings: Settings, exc: BaseException) -> SettingsError | None:
    """A failed connection attempt as a sentence when retrying cannot help (the broker refused the login)."""
    if not uses_sasl(settings):
        return None
    mechanism = settings.kafka_sasl_mechanism
    if isinstance(exc, kafka_errors.UnsupportedSaslMechanismError | kafka_errors.AuthenticationMethodNotSupported):
        return SettingsError(
            f"Kafka at {settings.broker_url} does not offer SASL {mechanism}: set {ENV_PREFIX}KAFKA_SASL_MECHANISM"
            " to one it offers (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER)."
        )
    if isinstance(exc, _LOGIN_REFUSED):
        what = (
            f"{ENV_PREFIX}KAFKA_OAUTH_TOKEN_FILE or {ENV_PREFIX}KAFKA_OAUTH_TOKEN_COMMAND"
            if mechanism == "OAUTHBEARER"
            else f"{ENV_PREFIX}KAFKA_SASL_USERNAME ({settings.kafka_sasl_username!r}) and {ENV_PREFIX}KAFKA_SASL_PASSWORD"
        )
        return SettingsError(f"Kafka at {settings.broker_url} refused the SASL {mechanism} login: check {what}.")
    return None
