"""Write files all or nothing: a temporary sibling named after the writing process, then a rename.

A process killed mid-write leaves its hidden sibling behind; the next run
removes the siblings whose process no longer exists (:func:`remove_orphans`).
"""

import os
import re
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path

import polars as pl

_ORPHAN = re.compile(r"^\..+\.(?:tmp|old)-(\d+)-[0-9a-f]{8}$")


def sibling(path: Path, kind: str = "tmp") -> Path:
    """A hidden sibling of `path` for a write in progress: `.{name}.{kind}-{pid}-{random}`."""
    path = Path(path)
    return path.parent / f".{path.name}.{kind}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists on this machine."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _write_atomic(path: Path, write: Callable[[Path], object]) -> Path:
    """Call ``write`` on a sibling of ``path``, then rename it into place: readers see the old file or the new
    one, never a part."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = sibling(path)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def write_parquet_atomic(table: pl.DataFrame, path: Path) -> Path:
    """Write ``table`` to ``path`` so that readers see the old file or the new one, never a part."""
    return _write_atomic(path, table.write_parquet)


def write_bytes_atomic(data: bytes, path: Path) -> Path:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never a part."""
    return _write_atomic(path, lambda tmp: tmp.write_bytes(data))


def remove_orphans(root: Path, *, depth: int = 3) -> list[Path]:
    """Remove the temporary siblings under `root` (down to `depth` folders) whose writing process is gone.

    Returns
    -------
    list of Path
        What was removed.
    """
    root, removed = Path(root), []
    for level in range(1, depth + 1):
        for path in root.glob("/".join(["*"] * (level - 1) + [".*"])):
            match = _ORPHAN.match(path.name)
            if match is None or pid_alive(int(match[1])):
                continue
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
            removed.append(path)
    return removed
