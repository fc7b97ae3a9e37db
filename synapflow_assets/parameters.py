"""Parameter sets written once: a dataclass with a numpydoc ``Attributes`` section is the source of the
defaults, types and descriptions that the command line (`cli.params`) and the Dagster run config
(`defs.config_models`) are generated from."""

from __future__ import annotations

import dataclasses
import inspect
import re
import typing
from collections.abc import Iterable, Mapping
from typing import Any

_ROLE = re.compile(r":\w+:`~?\.?([^`]+)`")


def field_docs(model: type) -> dict[str, str]:
    """The descriptions of the ``Attributes`` section of a numpydoc class docstring.

    Parameters
    ----------
    model : type

    Returns
    -------
    dict of str to str
        ``{field name: description}``; a field listed without a description is absent.
    """
    lines = (inspect.getdoc(model) or "").splitlines()
    docs: dict[str, list[str]] = {}
    names: list[str] = []
    inside = False
    for line, below in zip(lines, [*lines[1:], ""], strict=False):
        if line.strip() == "Attributes" and set(below.strip()) == {"-"}:
            inside = True
        elif inside and line and not line[0].isspace():
            if " : " not in line and not set(line.strip()) <= {"-"}:
                break
            names = [name.strip() for name in line.split(" : ")[0].split(",")] if " : " in line else names
        elif inside and line.strip():
            for name in names:
                docs.setdefault(name, []).append(line.strip())
    return {name: _ROLE.sub(r"\1", " ".join(text)).replace("``", "") for name, text in docs.items()}


def parameter_fields(
    model: type, names: Iterable[str] | None = None, *, defaults: Mapping[str, object] | None = None
) -> dict[str, tuple[Any, Any, str | None]]:
    """``{name: (type, default, description)}`` of the fields of the dataclass ``model``.

    Parameters
    ----------
    model : type
        A dataclass.
    names : iterable of str, optional
        The fields to keep, in this order (default: all, in declaration order).
    defaults : mapping, optional
        Defaults that differ from the dataclass's (e.g. a shorter run for a smoke test).
    """
    hints = typing.get_type_hints(model)
    fields = {f.name: f for f in dataclasses.fields(model)}
    docs = field_docs(model)
    chosen = list(names) if names is not None else list(fields)
    out = {}
    for name in chosen:
        field = fields[name]
        default = field.default if field.default is not dataclasses.MISSING else field.default_factory()  # type: ignore[misc]
        out[name] = (hints[name], (defaults or {}).get(name, default), docs.get(name))
    return out
