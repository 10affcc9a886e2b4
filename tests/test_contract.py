"""The event contract and KPI record schemas: generated from the code, never stale, examples valid."""

from __future__ import annotations

import json

import jsonschema
import pytest

from pipeline.contract import events as ev
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
