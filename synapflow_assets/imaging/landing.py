"""The landing folder: where new sessions arrive as ``<animal>/<session>.tif``, a single-plane
``<animal>/<session>.png`` or a folder ``<animal>/<session>/`` of PNG layers."""

import errno
import os
import shutil
import stat
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..environment import Environment
from ..store.locations import as_path, is_remote
from .errors import InputError
from .keys import InvalidKeyError, validate_key
from .png_stack import is_layer_file
from .readers import FOLDER_READER, READERS, session_suffix
from .readers import sidecar_path as sidecar_of

EXPECTED = "<session>.tif, .tiff, .ome.tif, a single-plane <session>.png or a folder of PNG layers"


@dataclass(frozen=True)
class LandedSession:
    """One session input found in the landing folder."""

    animal: str
    session: str
    path: Path
    fingerprint: str

    @property
    def done_marker(self) -> Path:
        return self.path.parent / f"{self.session}.done"

    @property
    def modified(self) -> float:
        """Time (s since the epoch) of the last change to any of its files."""
        return int(self.fingerprint.rsplit(":", 1)[1]) / 1e9


SETTLE_SECONDS = 10.0
"""A session without a `.done` marker is complete once none of its files changed for this long
(`SYNAPFLOW_SETTLE_SECONDS` overrides it)."""


def settle_seconds_default() -> float:
    seconds = Environment.read().settle_seconds
    return SETTLE_SECONDS if seconds is None else seconds


def is_complete(item: LandedSession, *, settle: float | None = None, now: float | None = None) -> bool:
    """The completeness rule of `ingest` and the landing sensor: a `<session>.done` marker, or no file
    of the session (every PNG of a folder, its detections CSV) changed for `settle` seconds."""
    now = time.time() if now is None else now
    settle_seconds = settle_seconds_default() if settle is None else settle
    return item.done_marker.exists() or now - item.modified >= settle_seconds


def session_key_of(path: Path) -> str | None:
    """The session key a landing entry stands for, or None if it is not an input."""
    name = path.name
    if name.startswith("."):
        return None
    if path.is_dir():
        return name if FOLDER_READER.files(path) else None
    suffix = session_suffix(name)
    if suffix is None or READERS[suffix].refusal(path) is not None:
        return None
    return name[: -len(suffix)]


def fingerprint(path: Path, session: str | None = None) -> str:
    """Cheap change detector: size and modification time of the input (every PNG of a folder)
    and of its imported detections ``<session>.detections.csv`` when present."""
    files = FOLDER_READER.files(path) if path.is_dir() else [path]
    detections = path.parent / f"{session}.detections.csv"
    if session and detections.exists():
        files.append(detections)
    stats = [f.stat() for f in files]
    return f"{len(stats)}:{sum(s.st_size for s in stats)}:{max(s.st_mtime_ns for s in stats)}"


def scan_landing(root: Path) -> tuple[list[LandedSession], list[str]]:
    """Every session input under ``root`` and the problems with entries that were skipped.

    Returns
    -------
    sessions : list of LandedSession
        Sorted by animal and path.
    problems : list of str
        One message per entry whose animal or session name is not a valid key.
    """
    root = as_path(root)
    sessions: list[LandedSession] = []
    problems: list[str] = []
    if not root.is_dir():
        return sessions, problems
    inside = None if is_remote(root) else Path(os.path.realpath(root))
    for entry in sorted(p for p in root.iterdir() if not p.name.startswith(".")):
        if inside is not None and (problem := entry_problem(entry, inside)) is not None:
            problems.append(problem)
        elif entry.is_dir():
            _scan_animal(entry, sessions, problems, inside)
    return sessions, problems


def entry_problem(entry: Path, inside: Path) -> str | None:
    """Why a local landing entry is refused, or None: a symbolic link is resolved once and must end at an
    existing file or folder under ``inside`` (the landing folder, resolved); a FIFO, socket or device is no
    input. The reason is one line naming the entry."""
    try:
        if entry.is_symlink():
            try:
                target = Path(os.path.realpath(entry, strict=True))
            except FileNotFoundError:
                return f"{entry}: dangling symbolic link (to {os.readlink(entry)}); ignored"
            except OSError as error:
                if error.errno == errno.ELOOP:
                    return f"{entry}: symbolic link loop; refused"
                raise
            if not target.is_relative_to(inside):
                return f"{entry}: symbolic link to {target}, outside the landing folder {inside}; refused"
        mode = entry.stat().st_mode
    except OSError as error:
        return f"{entry}: cannot be read ({error.strerror or error}); ignored"
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return None
    kind = "a FIFO" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode) else "a device"
    return f"{entry}: {kind}, not a regular file or folder; ignored"


SIDE_FILES = (
    ".done",
    ".json",
    ".detections.csv",
    ".boxes.csv",
    ".spines.csv",
    ".transform.json",
    ".yaml",
    ".yml",
    ".md",
    ".txt",
)
"""Files beside the sessions that are not sessions: markers, sidecars, the simulator's truth, settings, notes."""


def _scan_animal(animal_dir: Path, sessions: list, problems: list, inside: Path | None = None) -> None:
    for entry in sorted(animal_dir.iterdir()):
        if inside is not None and not entry.name.startswith("."):
            found = entry_problem(entry, inside)
            if found is None and entry.is_dir():  # a folder of PNG layers: each layer too
                found = next((p for f in FOLDER_READER.files(entry) if (p := entry_problem(f, inside))), None)
            if found is not None:
                problems.append(found)
                continue
        session = session_key_of(entry)
        if session is None:
            if entry.is_file() and not entry.name.startswith(".") and not entry.name.lower().endswith(SIDE_FILES):
                layer = " (a PNG layer outside its session folder)" if is_layer_file(entry.name) else ""
                problems.append(f"{entry}: not a session input{layer} (expected {EXPECTED}); ignored")
            continue
        try:
            validate_key(animal_dir.name, "animal")
            validate_key(session, "session")
            sessions.append(LandedSession(animal_dir.name, session, entry, fingerprint(entry, session)))
        except InvalidKeyError as error:
            problems.append(f"{entry}: {error}")
        except FileNotFoundError:
            continue


def find_session_input(root: Path, animal: str, session: str) -> Path:
    """The input file (TIFF or single PNG) or PNG folder of one session, or an InputError naming where it
    was sought."""
    folder = as_path(root) / validate_key(animal, "animal")
    validate_key(session, "session")
    found: list[LandedSession] = []
    if folder.is_dir():
        _scan_animal(folder, found, [], None if is_remote(folder) else Path(os.path.realpath(as_path(root))))
    matches = [s.path for s in found if s.session == session]
    if not matches:
        raise InputError(
            folder / session,
            f"no input for animal {animal!r} session {session!r} "
            f"(expected {session}.tif, {session}.png or a folder of PNG layers)",
        )
    if len(matches) > 1:
        raise InputError(folder / session, f"several inputs for one session: {', '.join(m.name for m in matches)}")
    return matches[0]


def settled_sessions(sessions: list[LandedSession], state: dict) -> tuple[list[LandedSession], dict]:
    """Which landed sessions are complete and not yet requested in their current form.

    A session is complete by :func:`is_complete`. A session whose
    fingerprint differs from the one last requested (its content changed) is
    requested again once it is complete.

    Parameters
    ----------
    sessions : list of LandedSession
        The current scan.
    state : dict
        ``{"requested": {path: fingerprint}}`` from the previous call (empty at first).

    Returns
    -------
    ready : list of LandedSession
    state : dict
        The state to pass next time.
    """
    requested = dict(state.get("requested", {}))
    ready = []
    for item in sessions:
        key = str(item.path)
        if is_complete(item) and requested.get(key) != item.fingerprint:
            ready.append(item)
            requested[key] = item.fingerprint
    current = {str(item.path) for item in sessions}
    return ready, {"requested": {key: fp for key, fp in requested.items() if key in current}}


@contextmanager
def staged_input(path: Path, session: str) -> Iterator[Path]:
    """The session input as a local path: itself, or for an input on an object store a temporary copy of it
    with its sidecar and detections CSV (removed afterwards). Errors about the copy name the stored input."""
    if not is_remote(path):
        yield Path(path)
        return
    folder = Path(tempfile.mkdtemp(prefix="synapflow_landing_")) / path.parent.name
    try:
        folder.mkdir()
        companions: dict[str, Any] = {
            str(p): p for p in (path, sidecar_of(path), path.parent / f"{session}.detections.csv")
        }
        for item in companions.values():  # the detections CSV staged for itself is copied once
            if item.exists():
                item.fs.get(item.path, str(folder / item.name), recursive=item.is_dir())
        try:
            yield folder / path.name
        except InputError as error:
            where = Path(error.path)
            stored = path.parent.joinpath(*where.relative_to(folder).parts) if where.is_relative_to(folder) else where
            raise InputError(stored, error.problem) from error
    finally:
        shutil.rmtree(folder.parent, ignore_errors=True)
