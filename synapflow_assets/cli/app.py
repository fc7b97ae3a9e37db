"""The ``synapflow`` command group and the one place that turns expected errors into ``error: ...`` and exit 2."""

from __future__ import annotations

import errno
import importlib
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import click

from ..environment import Environment
from ..errors import SynapFlowError


class CommandError(SynapFlowError):
    """A command's own refusal (a missing or contradictory option); shown as ``error: <message>``.

    Parameters
    ----------
    message : str
        One line for the user.
    exit_code : int, optional
        Exit status of the command (default 2).
    """

    def __init__(self, message: str, *, exit_code: int = 2):
        super().__init__(message)
        self.exit_code = exit_code


def describe(error: BaseException) -> str:
    """The one-line message of an expected error (a pydantic ``ValidationError`` names the option at fault).

    Parameters
    ----------
    error : BaseException

    Returns
    -------
    str
    """
    from pydantic import ValidationError

    if isinstance(error, ValidationError):
        first = error.errors()[0]
        return f"invalid option: {'.'.join(map(str, first['loc'])) or 'options'}: {first['msg']}"
    return str(error)


SYSTEM_ERRNOS = {errno.ENOSPC: "disk full", errno.EDQUOT: "disk quota exceeded", errno.EROFS: "read-only file system"}
SYSTEM_SIGNS = {
    "no space left on device": "disk full",
    "database or disk is full": "disk full",
    "attempt to write a readonly database": "read-only database",
}


def system_problem(error: BaseException) -> str | None:
    """One line for an error of the machine rather than of the command (a full disk, a read-only file system, no
    memory), found anywhere in the exception's chain (a library may wrap it), or None.

    Parameters
    ----------
    error : BaseException

    Returns
    -------
    str or None
    """
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, MemoryError):
            return "out of memory; close other programs or give this one more memory, then run again"
        if isinstance(current, OSError) and current.errno in SYSTEM_ERRNOS:
            where = f"{current.filename}: " if current.filename else ""
            return f"{where}{SYSTEM_ERRNOS[current.errno]} ({current.strerror}); free space or fix it, then run again"
        text = str(current).lower()
        for sign, problem in SYSTEM_SIGNS.items():
            if sign in text:
                return f"{problem} ({sign}); free space or fix it, then run again"
        current = current.__cause__ or current.__context__
    return None


class Command(click.Command):
    """A subcommand whose expected errors end it with ``error: <message>`` on stderr and no traceback.

    Expected are :class:`~synapflow_assets.errors.SynapFlowError` (exit status ``exit_code``, default 2),
    pydantic's ``ValidationError`` of the options (2) and the command's own ``expected`` types (2); any
    other exception keeps its traceback. A command returns its exit status (``None``: 0).

    Parameters
    ----------
    *args, **kwargs
        As :class:`click.Command`.
    expected : tuple of exception types, optional
        Further exceptions the command reports in one line (e.g. ``ValueError`` of a library it calls).
    """

    def __init__(self, *args, expected: tuple[type[BaseException], ...] = (), **kwargs):
        super().__init__(*args, **kwargs)
        self.expected = expected

    def invoke(self, ctx: click.Context) -> int:
        from pydantic import ValidationError

        try:
            status = super().invoke(ctx)
        except (SynapFlowError, ValidationError, *self.expected) as error:  # type: ignore[misc]
            click.echo(f"error: {describe(error)}", err=True)
            status = getattr(error, "exit_code", 2)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except Exception as error:
            if (problem := system_problem(error)) is None:
                raise
            click.echo(f"error: {problem}", err=True)
            status = 1
        if status:
            ctx.exit(status)
        return 0


#: The module of :mod:`synapflow_assets.cli` defining each subcommand; a module is imported when one of its
#: commands runs (the detector's pulls in torch), all of them for ``--help``.
COMMANDS = {
    "simulate": "ingest",
    "demo": "ingest",
    "ingest": "ingest",
    "upgrade": "upgrade",
    "track-depth": "tracking",
    "sql": "store",
    "export": "store",
    "compact": "store",
    "report": "lab",
    "review": "lab",
    "review-ui": "review_ui",
    "export-napari": "lab",
    "snapshot": "snapshot",
    "train-detector": "detector",
    "detect": "detector",
}


class Group(click.Group):
    """The command group: its subcommands are :class:`Command` and load with their module (:data:`COMMANDS`)."""

    command_class = Command

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(COMMANDS) | set(self.commands))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in COMMANDS and cmd_name not in self.commands:
            importlib.import_module(f"{__package__}.{COMMANDS[cmd_name]}")
        return super().get_command(ctx, cmd_name)


@click.group(cls=Group, help="Dendritic-spine analysis: python -m synapflow_assets COMMAND (or synapflow COMMAND).")
def app() -> None:
    """The group every subcommand of :mod:`synapflow_assets.cli` joins."""


def data_root() -> str:
    """The data root when ``--data`` is not given: ``$SYNAPFLOW_DATA``, else ``data``.

    Returns
    -------
    str
    """
    return Environment.read().data


def default_store() -> str:
    """The feature store when ``--store`` is not given: ``features.duckdb`` under :func:`data_root`.

    Returns
    -------
    str
    """
    return str(Path(data_root()) / "features.duckdb")


def data_option(help: str | None = None):
    """``--data`` with the :func:`data_root` default.

    Parameters
    ----------
    help : str, optional

    Returns
    -------
    callable
        A click option decorator.
    """
    return click.option("--data", default=data_root, show_default="$SYNAPFLOW_DATA, else data", help=help)


def check_data_root(data: str, *, create: bool = False) -> None:
    """Refuse, in one line, a local data root that is a file, is not writable, or does not exist (unless
    ``create``: a typo in ``--data`` must not silently start a new, empty root).

    Parameters
    ----------
    data : str
        The ``--data`` value (an object-store URL is not checked here).
    create : bool, optional
        Whether a missing root may be created.

    Raises
    ------
    CommandError
    """
    from ..store.locations import is_remote

    if is_remote(data):
        return
    root = Path(data)
    if root.exists() and not root.is_dir():
        raise CommandError(f"{root}: not a folder (--data names a data root, the folder holding landing/)")
    if not root.exists():
        if not create:
            raise CommandError(f"{root}: no such data root; check --data, or add --create to start a new one")
        return
    if not os.access(root, os.W_OK | os.X_OK):
        raise CommandError(f"{root}: the data root is not writable by this user")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line (``python -m synapflow_assets`` and the ``synapflow`` script).

    Parameters
    ----------
    argv : sequence of str, optional
        The arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        The exit status: 0, 1 when a command found problems in its inputs, 2 on a usage or expected error.
    """
    try:
        status = app.main(
            args=list(argv) if argv is not None else sys.argv[1:], prog_name="synapflow_assets", standalone_mode=False
        )
    except click.ClickException as error:
        error.show()
        return error.exit_code
    except click.Abort:
        click.echo("Aborted!", err=True)
        return 1
    return status or 0
