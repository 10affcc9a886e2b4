"""Checks a worker makes before it connects to anything, each failing with one sentence that says what to set.

- every file the Kafka security settings name exists and parses (`pipeline.runtime.kafka_security`);
- the web config file parses (`pipeline.runtime.webconfig`);
- with `PIPELINE_ENV=production`: a customer hash key is set, Kafka off this host is reached over TLS, and HTTP
  endpoints on an address off this host ask for credentials.

Development (the default) keeps the zero-configuration demo: the public development hash key (with a warning),
plaintext Kafka and open endpoints on loopback.
"""

from __future__ import annotations

import ipaddress

from pipeline.core.settings import ENV_PREFIX, Settings, SettingsError
from pipeline.runtime.broker import bootstrap_servers
from pipeline.runtime.kafka_security import check_files, uses_tls
from pipeline.runtime.webconfig import WebConfig, load_web_config


def is_loopback(host: str) -> bool:
    host = host.strip().strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name: assume it is off this host


def _hosts(settings: Settings) -> list[str]:
    return [a.rpartition(":")[0] or a for a in bootstrap_servers(settings).split(",") if a.strip()]


def production_problems(settings: Settings, web: WebConfig) -> list[str]:
    """What `PIPELINE_ENV=production` refuses, one sentence each (empty: nothing)."""
    problems = []
    if settings.customer_hash_key is None:
        problems.append(
            f"{ENV_PREFIX}ENV=production needs {ENV_PREFIX}CUSTOMER_HASH_KEY: a long random secret, the same on every"
            " worker and kept across restarts (e.g. `openssl rand -base64 32`, stored in a secret)."
        )
    remote = [h for h in _hosts(settings) if not is_loopback(h)]
    if remote and not uses_tls(settings):
        problems.append(
            f"{ENV_PREFIX}ENV=production refuses {settings.kafka_security_protocol} Kafka to {remote[0]}, off this"
            f" host: set {ENV_PREFIX}KAFKA_SECURITY_PROTOCOL=SSL or SASL_SSL (with {ENV_PREFIX}KAFKA_SSL_CA_FILE"
            " unless the system's CAs sign the brokers' certificates)."
        )
    if not is_loopback(settings.web_host) and not web.authenticates:
        problems.append(
            f"{ENV_PREFIX}ENV=production refuses unauthenticated HTTP endpoints on {settings.web_host}: set"
            f" {ENV_PREFIX}WEB_CONFIG_FILE to a web config with basic_auth_users (and tls_server_config), or"
            f" {ENV_PREFIX}WEB_HOST=127.0.0.1."
        )
    return problems


def check_at_start(settings: Settings) -> WebConfig:
    """Every check above; the first problem found stops the command (SettingsError, exit status 2)."""
    check_files(settings)
    web = load_web_config(settings.web_config_file)
    if settings.env == "production":
        problems = production_problems(settings, web)
        if problems:
            raise SettingsError("\n".join(problems))
    return web
