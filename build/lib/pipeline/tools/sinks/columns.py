"""The columns of a record kind, read from its msgspec class: one column per field, in the class's order.

Both sinks take their tables' shape from here, so a field added to a record class (the contract allows additive
changes within a version) becomes a column without a hand-written migration.
"""

from __future__ import annotations

from dataclasses import dataclass

import msgspec
import msgspec.inspect as mi

SCALARS = {
    mi.IntType: "int",
    mi.FloatType: "float",
    mi.StrType: "str",
    mi.BoolType: "bool",
    mi.DateTimeType: "datetime",
}


@dataclass(frozen=True)
class Column:
    name: str
    kind: str  # int, float, str, bool, datetime, or nested (lists, maps and structs: JSON in PostgreSQL)
    nullable: bool
    type: mi.Type  # the field's msgspec type, metadata and null removed


def bare(t: mi.Type) -> tuple[mi.Type, bool]:
    """The type without its metadata and without `None`, and whether it was nullable."""
    nullable = False
    while True:
        if isinstance(t, mi.Metadata):
            t = t.type
        elif isinstance(t, mi.UnionType):
            rest = [x for x in t.types if not isinstance(x, mi.NoneType)]
            nullable = nullable or len(rest) < len(t.types)
            if len(rest) != 1:
                raise TypeError(f"unsupported union {t}")
            t = rest[0]
        else:
            return t, nullable


def kind_of(t: mi.Type) -> str:
    if isinstance(t, mi.LiteralType):  # `kind` (strings), or a record's contract version `v` (integers)
        return "int" if all(type(v) is int for v in t.values) else "str"
    for cls, name in SCALARS.items():
        if isinstance(t, cls):
            return name
    if isinstance(t, mi.ListType | mi.DictType | mi.StructType):
        return "nested"
    raise TypeError(f"unsupported field type {t}")


def columns(cls: type[msgspec.Struct]) -> list[Column]:
    info = mi.type_info(cls)
    assert isinstance(info, mi.StructType)
    out = []
    for f in info.fields:
        t, nullable = bare(f.type)
        out.append(Column(f.encode_name, kind_of(t), nullable, t))
    return out
