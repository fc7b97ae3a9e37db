"""OME-Zarr (NGFF 0.5, zarr v3) volumes written atomically, with their projection."""

import hashlib
import os
import shutil
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

import numpy as np
import zarr
from zarr.codecs import BloscCodec
from zarr.core.array_spec import ArrayConfigParams

from ..failpoints import failpoint
from ..store.atomic_files import sibling
from ..store.locations import as_path, file_sizes, is_remote, remove_tree, storage_options
from .errors import InputError

NGFF_VERSION = "0.5"
_COMPRESSOR = BloscCodec(cname="zstd", clevel=3, shuffle="bitshuffle")
_EVERY_CHUNK: ArrayConfigParams = {"write_empty_chunks": True}
"""Every chunk is stored, even an empty one, so that a missing chunk file always means damage."""


def zarr_store(path: Path, *, read_only: bool = True) -> str | zarr.storage.FsspecStore:
    """What zarr opens for `path`: the folder name, or an fsspec store for an object-store prefix.

    A store opened for reading raises on a missing object instead of letting
    zarr fill the chunk with zeros: every chunk is written, so a chunk missing
    while it is read (the volume being rewritten) is damage, never an empty one.
    """
    if not is_remote(path):
        return str(path)
    strict = {"allowed_exceptions": ()} if read_only else {}
    return zarr.storage.FsspecStore.from_url(
        str(path), storage_options=storage_options(), read_only=read_only, **strict
    )


@contextmanager
def atomic_directory(target: Path) -> Iterator[Path]:
    """Yield a temporary sibling folder that replaces ``target`` only if the block succeeds.

    On an object store there is no rename: the old prefix is removed and the
    volume written in place; a write cut short leaves a volume whose listing
    differs from its recorded manifest, which `ingest` finds and rebuilds.
    """
    if is_remote(target):
        remove_tree(target)
        try:
            yield target
        except BaseException:
            remove_tree(target)
            raise
        failpoint("zarr_write")
        return
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = sibling(target, "tmp")
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    failpoint("zarr_write")
    old = sibling(target, "old")
    if target.exists():
        os.replace(target, old)
    os.replace(tmp, target)
    shutil.rmtree(old, ignore_errors=True)


def downsample_xy(data: np.ndarray) -> np.ndarray:
    """Halve the y and x size of a (z, y, x) array by 2x2 averaging, keeping the dtype."""
    z, y, x = data.shape
    blocks = data[:, : y // 2 * 2, : x // 2 * 2].reshape(z, y // 2, 2, x // 2, 2)
    mean = blocks.mean(axis=(2, 4), dtype=np.float32)
    return np.rint(mean).astype(data.dtype) if np.issubdtype(data.dtype, np.integer) else mean.astype(data.dtype)


def multiscales_metadata(name: str, voxel_size_um: Sequence[float], n_levels: int) -> dict:
    """NGFF ``multiscales`` entry: z, y, x in micrometres, x/y halved per level."""
    vz, vy, vx = (float(v) for v in voxel_size_um)
    return {
        "name": name,
        "axes": [{"name": a, "type": "space", "unit": "micrometer"} for a in "zyx"],
        "datasets": [
            {
                "path": str(level),
                "coordinateTransformations": [{"type": "scale", "scale": [vz, vy * 2**level, vx * 2**level]}],
            }
            for level in range(n_levels)
        ],
    }


def write_volume(
    target: Path,
    data: np.ndarray,
    voxel_size_um: Sequence[float],
    *,
    mip: np.ndarray | None = None,
    attributes: dict | None = None,
    n_levels: int = 3,
    chunks: tuple[int, int, int] = (1, 256, 256),
) -> Path:
    """Write a (z, y, x) volume as an OME-Zarr multiscale image, all or nothing.

    Parameters
    ----------
    target : Path
        Folder of the image, e.g. ``data/volumes/mouse01/day00.ome.zarr``;
        replaced atomically if it exists.
    data : ndarray, shape (z, y, x)
    voxel_size_um : sequence of 3 floats
        (z, y, x) voxel size in micrometres, written as the scale transform.
    mip : ndarray, shape (y, x), optional
        Maximum-intensity projection, stored as the array ``mip``.
    attributes : dict, optional
        Extra JSON facts stored under the ``synapflow`` attribute.
    n_levels : int
        Resolution levels, each halving x and y.
    """
    target = as_path(target)
    with atomic_directory(target) as tmp:
        group = zarr.open_group(store=zarr_store(tmp, read_only=False), mode="w", zarr_format=3)
        level = data
        for index in range(n_levels):
            group.create_array(
                str(index),
                data=level,
                chunks=tuple(min(c, s) for c, s in zip(chunks, level.shape, strict=False)),
                compressors=_COMPRESSOR,
                dimension_names=("z", "y", "x"),
                config=_EVERY_CHUNK,
            )
            if index + 1 < n_levels:
                level = downsample_xy(level)
        if mip is not None:
            group.create_array(
                "mip", data=mip, compressors=_COMPRESSOR, dimension_names=("y", "x"), config=_EVERY_CHUNK
            )
        group.attrs.update(
            {
                "ome": {
                    "version": NGFF_VERSION,
                    "multiscales": [multiscales_metadata(target.name, voxel_size_um, n_levels)],
                },
                "synapflow": attributes or {},
            }
        )
    return target


def read_volume_zarr(path: Path, level: int = 0) -> tuple[np.ndarray, tuple[float, float, float], dict]:
    """Read one level of an OME-Zarr image written by :func:`write_volume`.

    Returns
    -------
    data : ndarray, shape (z, y, x)
    voxel_size_um : tuple of float
        (z, y, x) scale of that level.
    attributes : dict
        The ``synapflow`` attributes.
    """
    group = zarr.open_group(store=zarr_store(path), mode="r", zarr_format=3)
    return _read_all(path, _array(group, str(level))), _scale(group, level), _attributes(group)


def _array(group: zarr.Group, name: str) -> zarr.Array:
    array = group[name]
    if not isinstance(array, zarr.Array):
        raise InputError(Path(str(group.store_path)), f"damaged volume: '{name}' is not an array")
    return array


def _attributes(group: zarr.Group) -> dict[str, Any]:
    """The ``synapflow`` attributes of a volume."""
    return dict(cast(dict, group.attrs.asdict()).get("synapflow", {}))


def _scale(group: zarr.Group, level: int) -> tuple[float, float, float]:
    """(z, y, x) voxel size of one level, from the NGFF ``multiscales`` entry."""
    multiscale = cast(dict, group.attrs.asdict())["ome"]["multiscales"][0]
    z, y, x = multiscale["datasets"][level]["coordinateTransformations"][0]["scale"]
    return float(z), float(y), float(x)


def _read_all(path: Path, array: zarr.Array) -> np.ndarray:
    """Every pixel of a stored array; a missing or undecodable chunk is an error, never zeros."""
    if array.nchunks_initialized < array.nchunks:
        raise InputError(
            path,
            f"damaged volume: {array.nchunks - array.nchunks_initialized} of {array.nchunks} "
            f"chunks of '{array.basename}' missing (ingest rebuilds it)",
        )
    try:
        return np.asarray(array[:])
    except Exception as error:
        raise InputError(
            path, f"damaged volume: '{array.basename}' cannot be decoded ({error}); ingest rebuilds it"
        ) from error


def volume_manifest(path: Path) -> str:
    """A digest of the names and sizes of every file of a stored volume (no file is read)."""
    digest = hashlib.blake2b(digest_size=16)
    for name, size in sorted(file_sizes(as_path(path)).items()):
        digest.update(f"{name}:{size}\n".encode())
    return digest.hexdigest()


def volume_problem(path: Path, manifest: str | None = None) -> str | None:
    """What is wrong with a stored volume (missing, unreadable, chunks missing, files of another size than
    when it was written, given its `manifest`); None when it looks intact.

    Only the listing is checked (no pixels are decoded), so it is cheap enough
    for every session on every `ingest`; a chunk whose bytes changed but not
    its size is found when it is read (:func:`read_volume_zarr` refuses it).
    """
    path = as_path(path)
    if not path.exists():
        return "missing"
    try:
        group = zarr.open_group(store=zarr_store(path), mode="r", zarr_format=3)
        arrays = [_array(group, name) for name in ("0", "mip") if name in group or name == "0"]
    except Exception as error:
        return f"unreadable ({type(error).__name__}: {error})"
    for array in arrays:
        if array.nchunks_initialized < array.nchunks:
            return (
                f"{array.nchunks - array.nchunks_initialized} of {array.nchunks} chunks of '{array.basename}' missing"
            )
    if manifest is not None and volume_manifest(path) != manifest:
        return "its files changed since it was written"
    return None


def read_mip(path: Path) -> np.ndarray:
    """The maximum-intensity projection stored beside the volume."""
    return _read_all(path, _array(zarr.open_group(store=zarr_store(path), mode="r", zarr_format=3), "mip"))


def read_volume_info(path: Path) -> tuple[tuple[int, int, int], tuple[float, float, float], dict]:
    """Shape and voxel size of level 0, and the ``synapflow`` attributes, without reading pixels."""
    group = zarr.open_group(store=zarr_store(path), mode="r", zarr_format=3)
    z, y, x = _array(group, "0").shape
    return (z, y, x), _scale(group, 0), _attributes(group)
