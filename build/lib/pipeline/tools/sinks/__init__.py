"""Sinks of the KPI topic: `python -m pipeline sink postgres|parquet` (docs/consumers.md).

`loop` consumes the topic and hands batches of records to a target; each target writes a batch in one step
(a database transaction, or files renamed into place) and only then are the offsets committed, so a crash at any
point loses nothing and, because every write keeps the higher revision of a key, duplicates nothing.
"""
