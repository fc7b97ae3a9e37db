"""Click options generated from the fields of a parameter dataclass, so that names, types, defaults and help
are written once, in the dataclass."""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import click

from ..parameters import field_docs


def _click_type(annotation) -> type:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        annotation = next(arg for arg in typing.get_args(annotation) if arg is not type(None))
    return annotation


def model_options(
    model: type,
    names: Iterable[str],
    *,
    flags: Mapping[str, str] | None = None,
    helps: Mapping[str, str] | None = None,
    defaults: Mapping[str, object] | None = None,
    choices: Mapping[str, Iterable[str]] | None = None,
) -> Callable[[Callable], Callable]:
    """A decorator adding one click option per named field of the dataclass ``model``.

    The option is ``--<field-name>`` (underscores as dashes) unless ``flags`` names it; it passes the value
    as the keyword argument named as the field; its type and default are the field's, its help the field's
    description (:func:`field_docs`) unless ``helps`` gives one. A ``bool`` field that defaults to true is a
    ``--no-<flag>`` switch, one that defaults to false a ``--<flag>`` switch.

    Parameters
    ----------
    model : type
        A dataclass.
    names : iterable of str
        The fields to expose, in the order of the help.
    flags : mapping of str to str, optional
        ``{field: flag without the dashes}`` where the flag is not the field's name.
    helps : mapping of str to str, optional
        ``{field: help}`` for fields the docstring does not describe.
    defaults : mapping, optional
        ``{field: default}`` where the command's default differs from the model's (say so in the help).
    choices : mapping of str to iterable of str, optional
        ``{field: allowed values}``.

    Returns
    -------
    callable
    """
    flags, helps, defaults, choices = flags or {}, helps or {}, defaults or {}, choices or {}
    docs = field_docs(model)
    hints = typing.get_type_hints(model)
    fields = {field.name: field for field in dataclasses.fields(model)}
    options = []
    for name in names:
        field = fields[name]
        default = defaults.get(name, field.default)
        flag = flags.get(name, name.replace("_", "-"))
        help_text = helps.get(name, docs.get(name))
        kind = _click_type(hints[name])
        if kind is bool:
            options.append(
                click.option(
                    f"--no-{flag}" if default else f"--{flag}",
                    name,
                    is_flag=True,
                    flag_value=not default,
                    default=default,
                    help=help_text,
                )
            )
            continue
        chosen: click.ParamType | type = click.Choice(list(choices[name])) if name in choices else kind
        options.append(click.option(f"--{flag}", name, type=chosen, default=default, show_default=True, help=help_text))

    def decorate(function: Callable) -> Callable:
        for option in reversed(options):
            function = option(function)
        return function

    return decorate


def model_values(model: type, values: Mapping[str, object]) -> dict[str, Any]:
    """The entries of ``values`` that are fields of the dataclass ``model``.

    Parameters
    ----------
    model : type
    values : mapping

    Returns
    -------
    dict
    """
    names = {field.name for field in dataclasses.fields(model)}
    return {name: value for name, value in values.items() if name in names}
