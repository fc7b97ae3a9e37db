"""Where data lives: a local folder or an S3-compatible bucket, behind one path API.

A data root such as ``data`` is a local folder (``pathlib.Path``); a root such
as ``s3://bucket/prefix`` is a prefix of an object store reached through fsspec
(``s3fs``, via ``universal_pathlib``). The endpoint and credentials come from the
standard AWS variables (``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY``), so the same settings serve boto3, MLflow and us.

Writes are all or nothing on both: a local file is written beside and
renamed; an object is sent in one PUT, which S3 makes visible whole or not
at all. What must stay on a local disk (caches, locks) goes under
:func:`local_cache`.
"""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path, PurePosixPath
from typing import Any

import polars as pl

from ..environment import Environment
from ..errors import SynapFlowError
from .atomic_files import write_bytes_atomic, write_parquet_atomic

REMOTE_SCHEMES = ("s3://", "s3a://", "gs://", "az://", "memory://")


class StorageError(SynapFlowError, RuntimeError):
    """The object store cannot be reached or refused a request."""


def is_remote(path: Any) -> bool:
    """Whether `path` (a string or a path) names an object store location rather than a local file."""
    return str(path).startswith(REMOTE_SCHEMES)


def _endpoint_url() -> str | None:
    return Environment.read().s3_endpoint_url


def endpoint() -> str:
    """The S3 endpoint in use (for messages): ``AWS_ENDPOINT_URL`` or AWS itself."""
    return _endpoint_url() or "AWS"


def storage_options() -> dict:
    """fsspec options of an S3 root: short time-outs and few retries, so that an unreachable store fails in
    seconds with a clear message, and no listing cache, so that files written by other processes are seen."""
    url = _endpoint_url()
    return {
        **({"endpoint_url": url} if url else {}),
        "use_listings_cache": False,
        "config_kwargs": {"connect_timeout": 5, "read_timeout": 60, "retries": {"max_attempts": 2, "mode": "standard"}},
    }


def location(root: str | os.PathLike) -> Any:
    """A local `Path`, or a `UPath` on the object store for ``s3://...`` (fsspec options from
    :func:`storage_options`)."""
    text = str(root)
    if not is_remote(text):
        return Path(text)
    try:
        import s3fs  # noqa: F401 - fsspec finds it by the scheme; importing here makes a missing install clear
        from upath import UPath
    except ImportError as error:
        raise StorageError(
            f"{text}: an object-store data root needs s3fs (pip install 'synapflow_assets[objects]')"
        ) from error
    return UPath(text.rstrip("/"), **storage_options())


def as_path(path: Any) -> Any:
    """`path` as a path object: kept when it already is one (local or remote), else made by :func:`location`."""
    return path if isinstance(path, Path) or hasattr(path, "fs") else location(path)


def check_reachable(root: Any) -> None:
    """Raise :class:`StorageError` naming the root and the endpoint when an object-store root cannot be listed."""
    root = location(root) if isinstance(root, str) else root
    if not is_remote(root):
        return
    try:
        root.fs.ls(root.path.split("/")[0])
    except FileNotFoundError as error:
        raise StorageError(f"{root}: no such bucket at {endpoint()}") from error
    except Exception as error:
        raise StorageError(
            f"cannot reach the object store {root} at {endpoint()}: "
            f"{type(error).__name__}: {str(error).splitlines()[0][:200]}"
        ) from error


def read_parquet(path: Any) -> pl.DataFrame:
    """A Parquet table from a local file or an object."""
    if not is_remote(path):
        return pl.read_parquet(path)
    return pl.read_parquet(io.BytesIO(path.read_bytes()))


def write_parquet(table: pl.DataFrame, path: Any) -> Any:
    """Write `table` so that readers see the old file or the new one, never a part; returns `path`."""
    if not is_remote(path):
        return write_parquet_atomic(table, path)
    buffer = io.BytesIO()
    table.write_parquet(buffer)
    path.write_bytes(buffer.getvalue())
    return path


def write_bytes(data: bytes, path: Any) -> Any:
    """Write a file (or object) all or nothing; returns `path`."""
    if not is_remote(path):
        return write_bytes_atomic(data, path)
    path.write_bytes(data)
    return path


def remove_file(path: Any) -> None:
    """Remove one file (or object); nothing happens when it does not exist."""
    if not is_remote(path):
        Path(path).unlink(missing_ok=True)
    elif path.fs.exists(path.path):
        path.fs.rm(path.path)


OUTPUT_SUFFIXES = (".ome.zarr", ".parquet")


def picture_path(output: Any, name: str) -> Any:
    """Where the picture `name` of an output lives: beside it, named after it without its suffix
    (``volumes/m1/day00.ome.zarr`` -> ``volumes/m1/day00.mip.png``), so a rerun replaces it."""
    stem = output.name
    for suffix in OUTPUT_SUFFIXES:
        if stem.endswith(suffix):
            stem = stem[: -len(suffix)]
            break
    return output.parent / f"{stem}.{name}.png"


def parquet_rows(path: Any) -> int:
    """The row count of a Parquet file, from its footer."""
    import pyarrow.parquet as pq

    with path.open("rb") if is_remote(path) else open(path, "rb") as handle:
        return pq.ParquetFile(handle).metadata.num_rows


def file_sizes(folder: Any) -> dict[str, int]:
    """Relative name -> size of every file under `folder` (one listing on an object store)."""
    if not is_remote(folder):
        folder = Path(folder)
        return {p.relative_to(folder).as_posix(): p.stat().st_size for p in folder.rglob("*") if p.is_file()}
    found = folder.fs.find(folder.path, detail=True)
    base = PurePosixPath(folder.path)
    return {
        PurePosixPath(name).relative_to(base).as_posix(): info["size"]
        for name, info in found.items()
        if info.get("type") == "file"
    }


def remove_tree(path: Any) -> None:
    """Remove a folder (or prefix) and everything under it; nothing happens when it does not exist."""
    if is_remote(path):
        if path.fs.exists(path.path):
            path.fs.rm(path.path, recursive=True)
        return
    import shutil

    shutil.rmtree(path, ignore_errors=True)


def local_cache(root: Any, *parts: str) -> Path:
    """A local folder for what an object-store root keeps on the machine (caches, locks, downloads):
    the root itself when it is local, else ``$SYNAPFLOW_CACHE`` (default ``~/.cache/synapflow``) / a digest of
    the root."""
    if not is_remote(root):
        return Path(root).joinpath(*parts)
    base = Environment.read().cache_root
    name = hashlib.blake2b(str(root).encode(), digest_size=6).hexdigest()
    return base.joinpath(name, *parts)
