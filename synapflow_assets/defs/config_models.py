"""Run-config schemas of the assets, generated from the parameter dataclasses (`parameters.parameter_fields`),
so that a default or a description is written once, beside the algorithm that uses it."""

import types
import typing
from collections.abc import Iterable, Mapping
from typing import Any

import dagster as dg

from ..parameters import parameter_fields


def _config_type(kind: Any) -> Any:
    """The Dagster config type of a field annotation (`X | None` becomes `Noneable(X)`)."""
    if typing.get_origin(kind) in (typing.Union, types.UnionType):
        inner = [arg for arg in typing.get_args(kind) if arg is not type(None)]
        return dg.Noneable(inner[0])
    return kind


def config_schema(
    model: type,
    *,
    names: Iterable[str] | None = None,
    defaults: Mapping[str, object] | None = None,
    extra: Mapping[str, tuple[Any, Any, str]] | None = None,
) -> dict[str, dg.Field]:
    """An asset's `config_schema`: one optional field per field of the dataclass `model`, with its type,
    default and description (the asset reads them as `context.op_execution_context.op_config`).

    Parameters
    ----------
    model : type
        The parameter dataclass.
    names : iterable of str, optional
        The fields to expose (default: all).
    defaults : mapping, optional
        Defaults that differ from the dataclass's.
    extra : mapping, optional
        ``{name: (type, default, description)}`` of fields the dataclass does not have.
    """
    fields = {**parameter_fields(model, names, defaults=defaults), **(extra or {})}
    return {
        name: dg.Field(_config_type(kind), default_value=default, is_required=False, description=text)
        for name, (kind, default, text) in fields.items()
    }
