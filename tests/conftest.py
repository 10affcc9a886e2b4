"""Shared fixtures. Integration tests share one embedded broker for the whole session."""

from __future__ import annotations

import pytest

from pipeline.runtime.broker import EmbeddedBroker


@pytest.fixture(scope="session")
def broker():
    """One embedded Kafka-compatible broker (Tansu) on a free loopback port, for every integration test."""
    with EmbeddedBroker() as b:
        yield b
