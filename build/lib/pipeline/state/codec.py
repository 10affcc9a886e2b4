"""The one codec of the states' checkpoints: typed msgspec documents in MessagePack behind a kind and a version.

Each state declares its stored form as msgspec structs (fields named, decoded and type-checked by msgspec;
`QueueCounts` is a struct stored without its zero counts, `Leg` too, without the fields still at their defaults)
and gets a `Codec` for it. A stored document is a 4-byte magic naming the kind of state, its version (2 bytes),
then the MessagePack of the document. A document of another kind or version is refused with a sentence: no
earlier format was ever released, so none is converted. Pure: the caller compresses
(`pipeline.processing.processor.pack`).
"""

from __future__ import annotations

import struct
from typing import Generic, TypeVar

import msgspec

T = TypeVar("T")
_HEAD = struct.Struct("<4sH")  # magic, version


class CheckpointError(ValueError):
    """A stored checkpoint this release cannot read (another kind of state, or another version)."""


class Codec(Generic[T]):
    """Encoder and decoder of one state's checkpoint documents (`T`: the document's struct)."""

    def __init__(self, name: str, magic: bytes, version: int, document: type[T]) -> None:
        if len(magic) != 4:
            raise ValueError("a codec's magic is 4 bytes")
        self.name = name  # said in errors: "queue state", "repeat state", ...
        self.magic = magic
        self.version = version
        self._head = _HEAD.pack(magic, version)
        self._encoder = msgspec.msgpack.Encoder()
        self._decoder = msgspec.msgpack.Decoder(document)

    def encode(self, document: T) -> bytes:
        return self._head + self._encoder.encode(document)

    def decode(self, data: bytes) -> T:
        """The document, or `CheckpointError` when `data` is not this kind and version of checkpoint."""
        if len(data) < _HEAD.size:
            raise CheckpointError(f"not a checkpoint of the {self.name} ({len(data)} bytes)")
        magic, version = _HEAD.unpack_from(data)
        if magic != self.magic:
            raise CheckpointError(
                f"not a checkpoint of the {self.name} (it starts with {data[:4]!r}, not {self.magic!r})"
            )
        if version != self.version:
            raise CheckpointError(
                f"{self.name} checkpoint version {version}: this release reads version {self.version} only"
            )
        try:
            return self._decoder.decode(memoryview(data)[_HEAD.size :])
        except msgspec.DecodeError as exc:
            raise CheckpointError(f"{self.name} checkpoint version {version} does not decode: {exc}") from exc
