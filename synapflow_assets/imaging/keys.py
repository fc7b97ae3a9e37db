"""Animal and session keys: what is allowed, and the order of sessions."""

import re
from datetime import datetime

from ..errors import SynapFlowError

KEY_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class InvalidKeyError(SynapFlowError, ValueError):
    """A name that cannot become a partition key or a path component."""


def validate_key(key: str, kind: str = "key") -> str:
    """Return ``key`` if it is a safe animal or session key, else raise.

    Keys start with a letter or digit and hold only letters, digits, ``.``,
    ``_`` and ``-`` (at most 64 characters, no ``..``). This rules out the
    characters that break Dagster multi-partition keys (``|``, ``,``, ``[``,
    ``]``) and paths (``/``, ``\\``, ``..``).
    """
    if not isinstance(key, str) or not KEY_PATTERN.fullmatch(key) or ".." in key:
        raise InvalidKeyError(
            f"invalid {kind} {key!r}: use 1-64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit (no '|', ',', '[', ']', '/', spaces or '..')"
        )
    return key


def natural_key(name: str) -> tuple:
    """Sort key that orders embedded numbers numerically: day2 < day10."""
    return tuple(int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name))


def order_sessions(sessions: dict[str, datetime | None]) -> list[str]:
    """Sessions of one animal in acquisition order.

    Parameters
    ----------
    sessions : dict
        Session key to acquisition time (None when unknown).

    Returns
    -------
    list of str
        By acquisition time when every session has one, else by natural order
        of the key (``day2`` before ``day10``; ISO dates sort correctly).
    """
    if sessions and all(when is not None for when in sessions.values()):
        return sorted(sessions, key=lambda key: (sessions[key], natural_key(key)))
    return sorted(sessions, key=natural_key)
