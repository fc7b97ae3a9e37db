"""Malformed inputs: each must raise InputError naming the file and the problem."""

import os

import numpy as np
import pytest
import tifffile
from PIL import Image

from synapflow_assets.imaging.errors import InputError
from synapflow_assets.imaging.readers import read_volume


def stack(shape=(5, 32, 32), dtype="uint16"):
    return np.random.default_rng(1).integers(0, 200, size=shape).astype(dtype)


def tif(tmp, name, data, **kwargs):
    path = tmp / name
    tifffile.imwrite(path, data, **kwargs)
    return path


def cut(path, keep):
    raw = path.read_bytes()
    path.write_bytes(raw[: keep(len(raw))])
    return path


def png_folder(tmp, name, layers, pattern="{}_layer{}.png"):
    folder = tmp / name
    folder.mkdir()
    for number, image in layers:
        Image.fromarray(image).save(folder / pattern.format(name, number))
    return folder


def grey(value=0, shape=(32, 32)):
    image = np.full(shape, value, np.uint8)
    image[0, 0] = 255
    return image


def _duplicate_png(tmp):
    folder = png_folder(tmp, "dup", [(1, grey()), (2, grey(3))])
    Image.fromarray(grey(6)).save(folder / "dup_layer01.png")
    return folder


def _corrupt_png(tmp):
    folder = png_folder(tmp, "bad", [(1, grey()), (2, grey(8))])
    layer = folder / "bad_layer2.png"
    raw = layer.read_bytes()
    layer.write_bytes(raw[:40] + b"\x00" * 20 + raw[60:])
    return folder


def _truncated_png(tmp):
    noisy = np.random.default_rng(2).integers(0, 255, (64, 64)).astype(np.uint8)
    folder = png_folder(tmp, "cut", [(1, noisy), (2, noisy)])
    cut(folder / "cut_layer2.png", lambda n: n * 2 // 3)
    return folder


# Each case builds an input in tmp and returns (path, name in message, phrase, read_volume kwargs).
CASES = {
    "missing": lambda t: (t / "gone.tif", "gone.tif", "does not exist", {}),
    "zero_bytes": lambda t: ((t / "zero.tif").write_bytes(b"") or t / "zero.tif", "zero.tif", "empty", {}),
    "truncated_half": lambda t: (
        cut(tif(t, "half.tif", stack((8, 64, 64))), lambda n: n // 2),
        "half.tif",
        "truncated",
        {},
    ),
    "truncated_tail": lambda t: (
        cut(tif(t, "tail.tif", stack((8, 64, 64)), compression="zlib", metadata=None), lambda n: n - 50),
        "tail.tif",
        "truncated",
        {},
    ),
    "truncated_imagej": lambda t: (
        cut(tif(t, "ij.tif", stack(), imagej=True), lambda n: n - 60),
        "ij.tif",
        "truncated",
        {},
    ),
    "text_named_tif": lambda t: (
        (t / "notes.tif").write_text("hello, not an image\n") and t / "notes.tif",
        "notes.tif",
        "not a TIFF",
        {},
    ),
    "random_bytes": lambda t: (
        (t / "noise.tiff").write_bytes(os.urandom(4096)) and t / "noise.tiff",
        "noise.tiff",
        "not a TIFF",
        {},
    ),
    "bad_extension": lambda t: (
        (t / "scan.czi").write_bytes(b"x") and t / "scan.czi",
        "scan.czi",
        "unsupported file type",
        {},
    ),
    "single_png_file": lambda t: (
        png_folder(t, "one", [(1, grey())]) / "one_layer1.png",
        "one_layer1.png",
        "single PNG",
        {},
    ),
    "time_and_z": lambda t: (
        tif(t, "tz.tif", stack((3, 4, 32, 32)), imagej=True, metadata={"axes": "TZYX"}),
        "tz.tif",
        "unsupported dimension order",
        {},
    ),
    "too_many_layers": lambda t: (
        tif(t, "deep.tif", stack((10, 32, 32))),
        "deep.tif",
        "too many layers",
        {"max_layers": 8},
    ),
    "too_large_xy": lambda t: (tif(t, "wide.tif", stack((5, 32, 64))), "wide.tif", "too large", {"max_xy": 48}),
    "too_small_xy": lambda t: (tif(t, "tiny.tif", stack((5, 8, 8))), "tiny.tif", "too small", {}),
    "nan": lambda t: (tif(t, "nan.tif", np.where(stack() > 100, np.nan, 1.0).astype("float32")), "nan.tif", "NaN", {}),
    "inf": lambda t: (tif(t, "inf.tif", np.where(stack() > 100, np.inf, 1.0).astype("float32")), "inf.tif", "Inf", {}),
    "bool": lambda t: (tif(t, "mask.tif", stack() > 100), "mask.tif", "non-numeric", {}),
    "complex": lambda t: (tif(t, "cplx.tif", stack().astype("complex64")), "cplx.tif", "non-numeric", {}),
    "blank": lambda t: (tif(t, "blank.tif", np.full((5, 32, 32), 7, np.uint16)), "blank.tif", "blank", {}),
    "channel_out_of_range": lambda t: (
        tif(t, "ch.tif", stack((5, 2, 32, 32)), imagej=True, metadata={"axes": "ZCYX"}),
        "ch.tif",
        "2 channels",
        {"channel": 2},
    ),
    "channels_not_dividing": lambda t: (
        tif(t, "odd.tif", stack((7, 32, 32))),
        "odd.tif",
        "not a multiple",
        {"n_channels": 2},
    ),
    "mixed_page_shapes": lambda t: (
        [
            tifffile.imwrite(t / "mixed.tif", stack((32, 32 + 8 * (i % 2)))[None][0], append=True, metadata=None)
            for i in range(3)
        ]
        and t / "mixed.tif",
        "mixed.tif",
        "different shapes",
        {},
    ),
    "ome_zero_size": lambda t: (
        tif(t, "z.ome.tif", stack(), ome=True, metadata={"axes": "ZYX", "PhysicalSizeX": 0.0, "PhysicalSizeY": 0.1}),
        "z.ome.tif",
        "non-positive",
        {},
    ),
    "imagej_zero_resolution": lambda t: (
        tif(t, "r0.tif", stack(), imagej=True, resolution=((0, 1), (0, 1)), metadata={"unit": "um", "axes": "ZYX"}),
        "r0.tif",
        "resolution of 0 pixels per unit",
        {},
    ),
    "int64_pixels": lambda t: (tif(t, "i64.tif", stack(dtype="int64")), "i64.tif", "unsupported pixel type int64", {}),
    "png_none": lambda t: ((t / "empty_dir").mkdir() or t / "empty_dir", "empty_dir", "no PNG layers", {}),
    "png_gap": lambda t: (png_folder(t, "gap", [(1, grey()), (2, grey(5)), (4, grey(9))]), "gap", "gap", {}),
    "png_duplicate": lambda t: (_duplicate_png(t), "dup", "duplicate", {}),
    "png_truncated": lambda t: (_truncated_png(t), "cut_layer2.png", "corrupt", {}),
    "png_mixed_shapes": lambda t: (
        png_folder(t, "ms", [(1, grey()), (2, grey(4, (32, 40)))]),
        "ms",
        "mixed shapes",
        {},
    ),
    "png_corrupt": lambda t: (_corrupt_png(t), "bad_layer2.png", "corrupt", {}),
    "sidecar_invalid_json": lambda t: (
        (t / "sj.json").write_text("{voxel: 1,") and tif(t, "sj.tif", stack()),
        "sj.json",
        "not valid JSON",
        {},
    ),
    "sidecar_negative_voxel": lambda t: (
        (t / "sn.json").write_text('{"voxel_size_um": [1, -0.1, 0.1]}') and tif(t, "sn.tif", stack()),
        "sn.json",
        "positive",
        {},
    ),
}


def snapshot(folder):
    return sorted((p.relative_to(folder), p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*"))


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_raises_input_error(tmp_path, case):
    path, name, phrase, kwargs = CASES[case](tmp_path)
    before = snapshot(tmp_path)
    with pytest.raises(InputError) as info:
        read_volume(path, **kwargs)
    message = str(info.value)
    assert name in message, message
    assert phrase in message, message
    assert snapshot(tmp_path) == before, "reading must not write anything"


@pytest.mark.parametrize("fraction", [0.001, 0.05, 0.3, 0.6, 0.9, 0.99])
def test_truncated_anywhere_is_input_error(tmp_path, fraction):
    path = tif(tmp_path, "cut.tif", stack((6, 48, 48)), compression="lzw", metadata=None)
    cut(path, lambda n: max(1, int(n * fraction)))
    with pytest.raises(InputError, match=r"cut\.tif"):
        read_volume(path)


def test_sizes_checked_before_pixels_are_read(tmp_path, monkeypatch):
    path = tif(tmp_path, "big.tif", np.zeros((300, 16, 16), np.uint8))

    def no_read(*args, **kwargs):
        raise AssertionError("pixel data read before the size check")

    monkeypatch.setattr(tifffile.TiffPageSeries, "asarray", no_read)
    with pytest.raises(InputError, match="too many layers: 300 > max_layers=256"):
        read_volume(path, max_layers=256)
    with pytest.raises(InputError, match="too large"):
        read_volume(path, max_xy=15)


def test_default_voxel_size_must_be_positive(tmp_path):
    path = tif(tmp_path, "ok.tif", stack())
    with pytest.raises(ValueError, match="positive"):
        read_volume(path, default_voxel_size_um=(0, 0.1, 0.1))
