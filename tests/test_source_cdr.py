"""Call-detail files (pipeline/sources/cdr.py) and `python -m pipeline ingest cdr FILE --mapping MAP.toml`.

The sample rows follow Asterisk's cdr_csv Master.csv (docs.asterisk.org, "CDR Variables",
https://docs.asterisk.org/Configuration/Reporting/Call-Detail-Records-CDR/CDR-Variables/: accountcode, src, dst,
dcontext, clid, channel, dstchannel, lastapp, lastdata, start, answer, end, duration, billsec, disposition
(ANSWERED, NO ANSWER, BUSY), amaflags, uniqueid, userfield; no header row; local times without an offset
unless `usegmtime`), read with a mapping file; and a tab-separated ACD export with header, local times and the
optional ACW, hold and transfer columns.
"""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from pipeline.contract import events as ev
from pipeline.sources import cdr
from pipeline.tools import ingest
from pipeline.tools.simulate import read_jsonl

ROOT = Path(__file__).resolve().parent.parent

MASTER_CSV_MAPPING = """
[file]
header = ["accountcode", "src", "dst", "dcontext", "clid", "channel", "dstchannel", "lastapp", "lastdata",
          "start", "answer", "end", "duration", "billsec", "disposition", "amaflags", "uniqueid", "userfield"]
time_format = "%Y-%m-%d %H:%M:%S"
time_zone = "America/New_York"
source = "pbx-1"

[columns]
call_id = "uniqueid"
queue = "dst"
arrived = "start"
answered = "answer"
ended = "end"
agent = "dstchannel"
customer = "src"
outcome = "disposition"

[outcomes]
answered = ["ANSWERED"]
abandoned = ["NO ANSWER", "BUSY"]
"""
MASTER_CSV = (
    '"","0612345678","600","from-queue","""Jane"" <0612345678>","SIP/trunk-00000001","SIP/1001-00000002",'
    '"Queue","sales,t","2026-03-02 09:00:00","2026-03-02 09:00:25","2026-03-02 09:04:25",265,240,"ANSWERED",'
    '"DOCUMENTATION","1772460000.1",""\n'
    '"","0698765432","600","from-queue","""Bob"" <0698765432>","SIP/trunk-00000003","",'
    '"Queue","sales,t","2026-03-02 09:01:00","","2026-03-02 09:01:40",40,0,"NO ANSWER",'
    '"DOCUMENTATION","1772460060.3",""\n'
)


def _import(
    tmp_path: Path, mapping_text: str, data: str, name: str = "calls.csv"
) -> tuple[list[ev.Event], ingest.Summary]:
    (tmp_path / "map.toml").write_text(mapping_text)
    (tmp_path / name).write_text(data)
    fmt = ingest.CdrFormat(cdr.load_mapping(tmp_path / "map.toml"))
    summary = ingest.import_file(fmt, tmp_path / name, tmp_path / "out.jsonl", tmp_path / "dead.jsonl")
    return list(read_jsonl(tmp_path / "out.jsonl")), summary


def test_asterisk_master_csv_rows_become_legs_with_local_times_and_a_zero_length_acw(tmp_path: Path) -> None:
    events, summary = _import(tmp_path, MASTER_CSV_MAPPING, MASTER_CSV)
    assert summary.read == 2 and not summary.dead
    types = [ev.event_type(type(e)) for e in events]
    assert types == [
        "contact.offered",
        "contact.answered",
        "contact.offered",
        "contact.abandoned",
        "contact.ended",
        "contact.acw_ended",
    ]  # in event-time order, not row by row
    offered = events[0]
    assert isinstance(offered, ev.ContactOffered)
    assert offered.time == datetime(2026, 3, 2, 14, 0, 0, tzinfo=UTC)  # 09:00 in New York (EST, UTC-5)
    assert offered.queue_id == "600" and offered.customer_id == "0612345678"
    assert offered.contact_id == f"1772460000.1@{offered.time.timestamp():.0f}"  # call id + arrival time
    assert isinstance(events[1], ev.ContactAnswered) and events[1].agent_id == "SIP/1001-00000002"
    assert (events[3].time - events[2].time).total_seconds() == 40
    assert events[4].time == events[5].time  # no ACW column: an explicit zero-length ACW


TSV_MAPPING = """
[file]
delimiter = "\\t"
time_zone = "Europe/Paris"

[columns]
call_id = "Id"
queue = "Skill"
arrived = "Start"
outcome = "Result"
wait_seconds = "Wait"
talk_seconds = "Talk"
agent = "Agent"
acw_seconds = "Wrap"
hold_seconds = "Hold"
transfer_to = "TransferTo"

[outcomes]
answered = ["OK"]
abandoned = ["ABAND"]
callback = ["CB"]

[placeholder_agents]
NO_SERVER = "unassigned"
"""
TSV = (
    "Id\tSkill\tStart\tResult\tWait\tTalk\tAgent\tWrap\tHold\tTransferTo\n"
    "17\tbilling\t2026-07-01T10:00:00\tOK\t10\t300\tNO_SERVER\t30\t20\t\n"
    "17\tbilling\t2026-07-01T11:00:00\tOK\t5\t60\tanna\t0\t0\tsales\n"  # the same id again: another call
    "18\tbilling\t2026-07-01T10:30:00\tWHAT\t5\t60\tanna\t0\t0\t\n"
    "19\tbilling\t2026-07-01T10:40:00\tCB\t50\t\t\t\t\t\n"
)


def test_a_tab_separated_export_with_acw_hold_transfer_and_placeholder_agents(tmp_path: Path) -> None:
    events, summary = _import(tmp_path, TSV_MAPPING, TSV, "calls.tsv")
    assert summary.dead == {"unknown_outcome": 1}
    dead = (tmp_path / "dead.jsonl").read_text()
    assert '"line": 4' in dead and "WHAT" in dead
    first = [e for e in events if getattr(e, "contact_id", "").startswith("17@") and e.time.hour == 8]
    assert [ev.event_type(type(e)) for e in first] == [
        "contact.offered",
        "contact.answered",
        "contact.hold_started",
        "contact.hold_ended",
        "contact.ended",
        "contact.acw_ended",
    ]
    assert first[0].time == datetime(2026, 7, 1, 8, 0, tzinfo=UTC)  # Paris summer time
    assert first[1].agent_id == "unassigned"  # type: ignore[attr-defined]
    assert (first[5].time - first[4].time).total_seconds() == 30
    assert (first[3].time - first[2].time).total_seconds() == 20
    transferred = [e for e in events if isinstance(e, ev.ContactTransferred)]
    assert len(transferred) == 1 and transferred[0].to_queue_id == "sales"
    assert len({e.contact_id for e in events if isinstance(e, ev.ContactOffered)}) == 3
    assert sum(isinstance(e, ev.CallbackRequested) for e in events) == 1
    times = [e.time for e in events]
    assert times == sorted(times)
    again, _ = _import(tmp_path, TSV_MAPPING, TSV, "calls.tsv")
    assert [e.event_id for e in again] == [e.event_id for e in events]  # stable ids


def test_a_row_csv_cannot_read_is_dead_lettered_and_the_rows_after_it_still_count(tmp_path: Path) -> None:
    # Python's csv refuses a field over 131,072 characters (`csv.field_size_limit`); that row alone is lost
    lines = TSV.splitlines(keepends=True)
    huge = lines[1].split("\t")
    huge[1] = "x" * 200_000
    (tmp_path / "clean").mkdir()
    clean, clean_summary = _import(tmp_path / "clean", TSV_MAPPING, TSV, "calls.tsv")
    events, summary = _import(tmp_path, TSV_MAPPING, "".join([lines[0], "\t".join(huge), *lines[1:]]), "calls.tsv")
    assert summary.dead == {**clean_summary.dead, "unreadable_row": 1}
    assert summary.read == clean_summary.read + 1 and [e.event_id for e in events] == [e.event_id for e in clean]
    dead = [line for line in (tmp_path / "dead.jsonl").read_text().splitlines() if "unreadable_row" in line]
    assert len(dead) == 1 and '"line": 2' in dead[0] and "field larger than field limit" in dead[0]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[columns]\nqueue='q'\n", "columns.call_id: Field required"),
        (TSV_MAPPING.replace('time_zone = "Europe/Paris"', 'time_zone = "Mars/Base"'), "file.time_zone"),
        (TSV_MAPPING.replace('delimiter = "\\t"', 'delimiter = "ab"'), "file.delimiter"),
        (TSV_MAPPING + "\n[extra]\nx = 1\n", "extra: Extra inputs are not permitted"),
        (TSV_MAPPING.replace('wait_seconds = "Wait"\n', ""), "columns: give `answered` (a time) or `wait_seconds`"),
        ("[columns\n", "cannot be read as TOML"),
    ],
)
def test_a_bad_mapping_is_named_by_its_key(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "map.toml").write_text(text)
    with pytest.raises(cdr.MappingError) as refused:
        cdr.load_mapping(tmp_path / "map.toml")
    assert message in str(refused.value) and str(tmp_path / "map.toml") in str(refused.value)


def test_the_command_answers_a_bad_mapping_or_a_missing_column_in_one_sentence(tmp_path: Path) -> None:
    (tmp_path / "map.toml").write_text(TSV_MAPPING.replace('delimiter = "\\t"', "delimiter = 5"))
    (tmp_path / "calls.tsv").write_text(TSV.replace("Skill", "Queue"))
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, "-m", "pipeline", "ingest", "cdr", "calls.tsv", "--out", "e.jsonl", *args]
        return subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)

    bad = run("--mapping", "map.toml")
    assert bad.returncode == 2 and "file.delimiter" in bad.stderr and "Traceback" not in bad.stderr
    (tmp_path / "map.toml").write_text(TSV_MAPPING)
    missing = run("--mapping", "map.toml")
    assert missing.returncode == 2 and "['Skill']" in missing.stderr and "Traceback" not in missing.stderr
    assert len(missing.stderr.strip().splitlines()) == 1
