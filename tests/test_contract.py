"""The event contract and KPI record schemas: generated from the code, never stale, examples valid."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import jsonschema
import msgspec
import pytest

from pipeline.contract import events as ev
from pipeline.kpis.agents import AgentKpiRecord
from pipeline.kpis.quality import FcrRecord
from pipeline.kpis.record import KpiRecord
from pipeline.processing.decode import MessageDecoder
from pipeline.tools import schemas


@pytest.mark.parametrize("name", sorted(schemas.generate()))
def test_committed_schema_is_up_to_date(name):
    committed = (schemas.SCHEMA_DIR / name).read_text()
    assert committed == schemas.generate()[name], f"schemas/{name} is stale: run `make generate`"


@pytest.mark.parametrize("name", sorted(schemas.generate()))
def test_examples_validate_against_the_schema(name):
    doc = json.loads(schemas.generate()[name])
    jsonschema.Draft202012Validator.check_schema(doc)
    validator = jsonschema.Draft202012Validator(doc)
    assert doc["examples"]
    for example in doc["examples"]:
        validator.validate(example)


def test_schema_and_decoder_agree_on_what_is_invalid():
    """An independent JSON Schema validator rejects what the decoder rejects (and accepts what it accepts)."""
    validator = jsonschema.Draft202012Validator(json.loads(schemas.generate()["contact-event.v1.json"]))
    decoder = MessageDecoder(ev.ContactTopicEvent, 65536, 1 << 20)
    good = {
        "type": "contact.answered",
        "event_id": "e1",
        "time": "2026-01-05T09:00:00Z",
        "contact_id": "c1",
        "queue_id": "q",
        "channel": "voice",
        "agent_id": "a1",
    }
    cases = [
        good,
        {**good, "channel": "fax"},
        {k: v for k, v in good.items() if k != "agent_id"},
        {**good, "type": "contact.teleported"},
        {**good, "event_id": ""},
        {**good, "v": 2},
        [good, {**good, "event_id": "e2"}],
    ]
    for case in cases:
        events, rejections = decoder.decode(json.dumps(case).encode())
        assert validator.is_valid(case) == (not rejections), case


def test_every_contract_type_has_an_example():
    documented = {
        e["type"]
        for name in ("contact-event.v1.json", "agent-event.v1.json")
        for e in json.loads(schemas.generate()[name])["examples"]
    }
    assert documented == {ev.event_type(c) for c in ev.CONTACT_EVENT_TYPES + ev.AGENT_EVENT_TYPES}


def test_the_layers_import_one_way():
    """The import contract in pyproject.toml (layers, and Faust and Kafka only in the runtime and the tools)."""
    import subprocess
    import sys
    from pathlib import Path

    lint_imports = Path(sys.executable).with_name("lint-imports")
    done = subprocess.run([str(lint_imports)], capture_output=True, text=True, cwd=Path(__file__).parent.parent)
    assert done.returncode == 0, done.stdout[-3000:]
    assert "0 broken" in done.stdout


# ---- compatibility: every example ever published in a v1 schema stays valid and means the same ---------------

V1_EXAMPLES = json.loads((Path(__file__).parent / "contract-v1-examples.json").read_text())
"""The examples of every committed version of the v1 schemas (collected from the repository's history): frozen,
never regenerated. A change that breaks one of them needs a new major version (schemas/README.md). The queue KPI
record's first four examples are left out: the record gained required fields (hold, chat) while v1 was being
built, before the compatibility policy; the file holds its examples from the policy on."""


def _same(original, reread) -> bool:
    """The re-encoded value means what the original said: equal, or the same instant written another way."""
    if original == reread:
        return True
    if isinstance(original, str) and isinstance(reread, str):
        try:
            return datetime.fromisoformat(original) == datetime.fromisoformat(reread)
        except ValueError:
            return False
    if isinstance(original, dict) and isinstance(reread, dict):
        return all(k in reread and _same(v, reread[k]) for k, v in original.items())
    if isinstance(original, list) and isinstance(reread, list):
        return len(original) == len(reread) and all(map(_same, original, reread))
    return False


@pytest.mark.parametrize(
    "schema, typ",
    [
        ("contact-event", ev.ContactTopicEvent),
        ("agent-event", ev.AgentTopicEvent),
        ("kpi-record", KpiRecord),
        ("agent-kpi-record", AgentKpiRecord),
        ("fcr-record", FcrRecord),
    ],
)
def test_every_published_v1_example_is_still_valid_and_means_the_same(schema, typ):
    examples = V1_EXAMPLES[schema]
    assert len(examples) >= 1
    validator = jsonschema.Draft202012Validator(json.loads(schemas.generate()[f"{schema}.v1.json"]))
    for example in examples:
        validator.validate(example)  # the current schema accepts it
        decoded = msgspec.json.decode(json.dumps(example).encode(), type=typ)
        assert decoded.v == 1  # absent or 1: version 1
        reread = msgspec.to_builtins(decoded)
        assert _same(example, reread), (example, reread)  # every field it had, with the same value


def test_v1_examples_of_every_event_type_are_frozen():
    """The frozen file covers every event type of the first contract (new types add examples to the schemas)."""
    frozen = {e["type"] for name in ("contact-event", "agent-event") for e in V1_EXAMPLES[name]}
    assert frozen <= {ev.event_type(c) for c in ev.CONTACT_EVENT_TYPES + ev.AGENT_EVENT_TYPES}
    assert {"contact.offered", "contact.acw_ended", "agent.state_changed", "source.heartbeat"} <= frozen
