"""read_volume, find_png_layers and content_hash on well-formed inputs."""

import json
from datetime import UTC, datetime

import numpy as np
import pytest
import tifffile
from PIL import Image

from synapflow_assets.imaging.errors import InputError
from synapflow_assets.imaging.readers import content_hash, find_png_layers, read_volume


def ramp(shape, dtype="uint16", seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 200 if dtype == "uint8" else 4000, size=shape).astype(dtype)


def test_imagej_zyx_voxel_size_exact(tmp_path):
    data = ramp((6, 32, 40))
    path = tmp_path / "day00.tif"
    tifffile.imwrite(
        path,
        data,
        imagej=True,
        resolution=(1 / 0.125, 1 / 0.25),
        metadata={"spacing": 0.75, "unit": "um", "axes": "ZYX"},
    )
    vol = read_volume(path)
    np.testing.assert_array_equal(vol.data, data)
    assert vol.data.dtype == np.uint16
    assert vol.voxel_size_um == (0.75, 0.25, 0.125)
    assert vol.voxel_size_source == "imagej"
    assert vol.metadata["format"] == "imagej-tiff"
    assert vol.metadata["axes"] == "ZYX"
    assert vol.metadata["voxel_size_sources"] == {"z": "imagej", "y": "imagej", "x": "imagej"}
    assert vol.acquired_at is None


def test_imagej_nm_unit_and_pixel_unit_ignored(tmp_path):
    data = ramp((5, 32, 32))
    nm = tmp_path / "nm.tif"
    tifffile.imwrite(
        nm, data, imagej=True, resolution=(1 / 100, 1 / 100), metadata={"spacing": 500, "unit": "nm", "axes": "ZYX"}
    )
    assert read_volume(nm).voxel_size_um == pytest.approx((0.5, 0.1, 0.1))
    px = tmp_path / "px.tif"
    tifffile.imwrite(px, data, imagej=True, resolution=(1, 1), metadata={"axes": "ZYX"})
    vol = read_volume(px, default_voxel_size_um=(2.0, 0.3, 0.3))
    assert vol.voxel_size_um == (2.0, 0.3, 0.3)
    assert vol.voxel_size_source == "default"


@pytest.mark.parametrize("unit", ["micron", "\\u00B5m", "um"])
def test_imagej_micron_spellings(tmp_path, unit):
    path = tmp_path / "u.tif"
    tifffile.imwrite(
        path, ramp((5, 32, 32)), imagej=True, resolution=(5, 5), metadata={"spacing": 2.0, "unit": unit, "axes": "ZYX"}
    )
    assert read_volume(path).voxel_size_um == pytest.approx((2.0, 0.2, 0.2))


def test_imagej_zcyx_channel_choice(tmp_path):
    data = ramp((5, 2, 32, 32))
    path = tmp_path / "two.tif"
    tifffile.imwrite(path, data, imagej=True, metadata={"axes": "ZCYX"})
    np.testing.assert_array_equal(read_volume(path, channel=1).data, data[:, 1])
    vol = read_volume(path)
    np.testing.assert_array_equal(vol.data, data[:, 0])
    assert vol.metadata["n_channels"] == 2 and vol.metadata["channel"] == 0


def test_imagej_tzcyx_with_single_timepoint_is_squeezed(tmp_path):
    data = ramp((1, 4, 2, 32, 32))
    path = tmp_path / "t1.tif"
    tifffile.imwrite(path, data, imagej=True, metadata={"axes": "TZCYX"})
    vol = read_volume(path, channel=1)
    np.testing.assert_array_equal(vol.data, data[0, :, 1])


def test_ome_tiff_units_and_acquisition_date(tmp_path):
    data = ramp((5, 32, 48))
    path = tmp_path / "s.ome.tif"
    tifffile.imwrite(
        path,
        data,
        ome=True,
        metadata={
            "axes": "ZYX",
            "PhysicalSizeX": 0.2,
            "PhysicalSizeXUnit": "µm",
            "PhysicalSizeY": 150,
            "PhysicalSizeYUnit": "nm",
            "PhysicalSizeZ": 1.5,
            "PhysicalSizeZUnit": "µm",
        },
    )
    vol = read_volume(path)
    np.testing.assert_array_equal(vol.data, data)
    assert vol.voxel_size_um == pytest.approx((1.5, 0.15, 0.2))
    assert vol.voxel_size_source == "ome"
    assert vol.metadata["format"] == "ome-tiff"

    dated = tmp_path / "dated.ome.tif"
    tifffile.imwrite(
        dated,
        data,
        ome=True,
        metadata={"axes": "ZYX", "PhysicalSizeX": 0.1, "PhysicalSizeY": 0.1, "PhysicalSizeZ": 2.0},
    )
    xml = tifffile.tiffcomment(dated)
    xml = xml.replace("<Pixels", "<AcquisitionDate>2024-03-05T10:20:30</AcquisitionDate><Pixels", 1)
    tifffile.tiffcomment(dated, xml.encode())
    vol = read_volume(dated)
    assert vol.acquired_at == datetime(2024, 3, 5, 10, 20, 30)
    assert vol.voxel_size_um == pytest.approx((2.0, 0.1, 0.1))


@pytest.mark.parametrize("compression", ["lzw", "zlib", "zstd"])
def test_compressed(tmp_path, compression):
    data = ramp((6, 40, 33))
    path = tmp_path / f"c_{compression}.tif"
    tifffile.imwrite(path, data, compression=compression)
    vol = read_volume(path)
    np.testing.assert_array_equal(vol.data, data)
    assert vol.metadata["compression"] != "none"


@pytest.mark.parametrize("dtype", ["uint8", "float32", "float64", "int16"])
def test_dtypes(tmp_path, dtype):
    data = ramp((5, 32, 32), "uint8" if dtype == "uint8" else "uint16").astype(dtype)
    path = tmp_path / f"{dtype}.tif"
    tifffile.imwrite(path, data)
    vol = read_volume(path)
    expected = np.float32 if dtype.startswith("float") else np.dtype(dtype)
    assert vol.data.dtype == expected
    np.testing.assert_array_equal(vol.data, data.astype(expected))


def test_scanimage_interleaved_channels(tmp_path):
    data = ramp((8, 32, 32))  # 4 z x 2 channels, interleaved
    path = tmp_path / "si.tif"
    text = "SI.hChannels.channelSave = [1;2]\nSI.hStackManager.stackZStepSize = 2\n"
    tifffile.imwrite(path, data, software=text, description=text, metadata=None)
    vol = read_volume(path, channel=1)
    np.testing.assert_array_equal(vol.data, data[1::2])
    assert vol.voxel_size_um == (2.0, 0.12, 0.12)
    assert vol.metadata["format"] == "scanimage-tiff"
    assert vol.metadata["n_channels"] == 2
    assert vol.metadata["voxel_size_sources"] == {"z": "scanimage", "y": "default", "x": "default"}
    assert vol.metadata["channel_choice"] == "configured"
    data[0::2] //= 4  # channel 0 dim: the brightest (channel 1) is read when no channel is set
    tifffile.imwrite(path, data, software=text, description=text, metadata=None)
    default = read_volume(path)
    np.testing.assert_array_equal(default.data, data[1::2])
    assert default.metadata["channel"] == 1 and default.metadata["channel_choice"] == "brightest of 2"


def test_scanimage_actual_step_preferred(tmp_path):
    data = ramp((6, 32, 32))
    path = tmp_path / "si.tif"
    tifffile.imwrite(
        path,
        data,
        software="SI.hStackManager.actualStackZStepSize = -0.5\n"
        "SI.hStackManager.stackZStepSize = 1\nSI.hChannels.channelSave = 1",
    )
    vol = read_volume(path)
    assert vol.voxel_size_um[0] == 0.5
    np.testing.assert_array_equal(vol.data, data)


def test_n_channels_argument_deinterleaves_plain_tiff(tmp_path):
    data = ramp((9, 32, 32))
    path = tmp_path / "plain.tif"
    tifffile.imwrite(path, data)
    vol = read_volume(path, n_channels=3, channel=2)
    np.testing.assert_array_equal(vol.data, data[2::3])
    assert vol.shape == (3, 32, 32)


def write_layers(folder, data, pattern):
    folder.mkdir()
    for i, layer in enumerate(data, start=1):
        Image.fromarray(layer).save(folder / pattern.format(i))


@pytest.mark.parametrize("pattern", ["s_layer{}.png", "s_layer{:02d}.png", "s-{:03d}.png"])
def test_png_folder_sorted_numerically(tmp_path, pattern):
    data = np.stack([np.full((32, 40), 10 * i, np.uint8) for i in range(12)])
    data[:, 0, 0] = 255  # not blank per layer either
    folder = tmp_path / "day00"
    write_layers(folder, data, pattern)
    layers = find_png_layers(folder)
    assert [p.name for p in layers][9:] == [pattern.format(i) for i in (10, 11, 12)]
    vol = read_volume(folder)
    np.testing.assert_array_equal(vol.data, data)
    assert vol.metadata["format"] == "png-layers" and vol.data.dtype == np.uint8


def test_png_folder_16bit(tmp_path):
    data = ramp((4, 32, 32)) * 10
    folder = tmp_path / "deep"
    write_layers(folder, data, "deep_layer{}.png")
    vol = read_volume(folder)
    assert vol.data.dtype == np.uint16
    np.testing.assert_array_equal(vol.data, data)


def test_sidecar_voxel_size_time_and_channel(tmp_path):
    data = ramp((6, 32, 32))
    path = tmp_path / "day04.tif"
    tifffile.imwrite(path, data)
    (tmp_path / "day04.json").write_text(
        json.dumps(
            {"voxel_size_um": [0.9, 0.11, 0.1], "acquired_at": "2024-01-02T03:04:05Z", "n_channels": 2, "channel": 1}
        )
    )
    vol = read_volume(path)
    assert vol.voxel_size_um == (0.9, 0.11, 0.1)
    assert vol.voxel_size_source == "sidecar"
    assert vol.acquired_at == datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    np.testing.assert_array_equal(vol.data, data[1::2])
    np.testing.assert_array_equal(read_volume(path, channel=0).data, data[0::2])


def test_sidecar_for_png_folder(tmp_path):
    data = ramp((3, 32, 32), "uint8")
    folder = tmp_path / "day08"
    write_layers(folder, data, "x_layer{}.png")
    (tmp_path / "day08.json").write_text('{"voxel_size_um": [1.2, 0.2, 0.2]}')
    assert read_volume(folder).voxel_size_um == (1.2, 0.2, 0.2)


def test_priority_per_axis(tmp_path):
    data = ramp((5, 32, 32))
    path = tmp_path / "mix.tif"
    # ImageJ gives x/y only (no spacing), sidecar gives all three: z from sidecar.
    tifffile.imwrite(path, data, imagej=True, resolution=(10, 10), metadata={"unit": "um", "axes": "ZYX"})
    (tmp_path / "mix.json").write_text('{"voxel_size_um": [3.0, 0.5, 0.5]}')
    vol = read_volume(path)
    assert vol.voxel_size_um == pytest.approx((3.0, 0.1, 0.1))
    assert vol.metadata["voxel_size_sources"] == {"z": "sidecar", "y": "imagej", "x": "imagej"}
    assert vol.voxel_size_source == "imagej"
    # OME beats sidecar; default is used only when nothing else states a value.
    ome = tmp_path / "o.ome.tif"
    tifffile.imwrite(ome, data, ome=True, metadata={"axes": "ZYX", "PhysicalSizeX": 0.3, "PhysicalSizeY": 0.3})
    (tmp_path / "o.json").write_text('{"voxel_size_um": [4.0, 0.5, 0.5]}')
    vol = read_volume(ome)
    assert vol.voxel_size_um == pytest.approx((4.0, 0.3, 0.3))
    plain = tmp_path / "p.tif"
    tifffile.imwrite(plain, data)
    assert read_volume(plain, default_voxel_size_um=(1.1, 0.2, 0.3)).voxel_size_um == (1.1, 0.2, 0.3)


def test_single_layer_accepted_with_min_layers_1(tmp_path):
    path = tmp_path / "one.tif"
    image = ramp((32, 32))
    tifffile.imwrite(path, image)
    vol = read_volume(path, min_layers=1)
    assert vol.shape == (1, 32, 32)
    np.testing.assert_array_equal(vol.data[0], image)


def test_content_hash_file_and_sidecar(tmp_path):
    path = tmp_path / "h.tif"
    tifffile.imwrite(path, ramp((5, 32, 32)))
    first = content_hash(path)
    assert len(first) == 32 and first == content_hash(path)
    raw = bytearray(path.read_bytes())
    raw[-1] ^= 1
    path.write_bytes(bytes(raw))
    changed = content_hash(path)
    assert changed != first
    (tmp_path / "h.json").write_text('{"voxel_size_um": [1, 0.1, 0.1]}')
    with_side = content_hash(path)
    assert with_side != changed and with_side == content_hash(path)
    (tmp_path / "h.json").write_text('{"voxel_size_um": [2, 0.1, 0.1]}')
    assert content_hash(path) != with_side


def test_content_hash_png_folder(tmp_path):
    data = ramp((3, 32, 32), "uint8")
    folder = tmp_path / "f"
    write_layers(folder, data, "f_layer{}.png")
    first = content_hash(folder)
    assert first == content_hash(folder)
    Image.fromarray(data[0] + 1).save(folder / "f_layer1.png")
    second = content_hash(folder)
    assert second != first
    (tmp_path / "f.json").write_text("{}")
    assert content_hash(folder) != second
    with pytest.raises(InputError, match="does not exist"):
        content_hash(tmp_path / "nope.tif")


@pytest.mark.parametrize("mode", ["L", "I;16", "RGB", "P"])
def test_single_png_is_a_one_layer_volume(tmp_path, mode):
    grey = ramp((48, 40), "uint16" if mode == "I;16" else "uint8", seed=3)
    path = tmp_path / "day04.png"
    if mode == "RGB":  # a green look-up table
        Image.fromarray(np.stack([np.zeros_like(grey), grey, np.zeros_like(grey)], -1)).save(path)
    elif mode == "P":
        Image.fromarray(np.stack([grey, grey, grey], -1)).convert("P", palette=Image.Palette.ADAPTIVE).save(path)
    else:
        Image.fromarray(grey).save(path)
    vol = read_volume(path, estimate_pixel_size=False)
    assert vol.shape == (1, 48, 40) and vol.metadata["format"] == "png" and vol.data.dtype == grey.dtype
    assert vol.voxel_size_source == "default"
    if mode == "P":  # an adaptive palette approximates the grey values
        assert np.abs(vol.data[0].astype(int) - grey).max() <= 8
    else:
        np.testing.assert_array_equal(vol.data[0], grey)
    assert ("colour_note" in vol.metadata) == (mode in ("RGB", "P"))
    with pytest.raises(InputError, match="at least 2 layers"):
        read_volume(path, min_layers=2)
    with pytest.raises(InputError, match="channel 1 of 1 requested, but a PNG image has 1 channel"):
        read_volume(path, channel=1)


def test_bad_single_png_names_the_file_and_the_problem(tmp_path):
    noisy = np.random.default_rng(2).integers(0, 255, (64, 64)).astype(np.uint8)
    good = tmp_path / "good.png"
    Image.fromarray(noisy).save(good)
    raw = good.read_bytes()
    cases = {
        "cut.png": (raw[: len(raw) * 2 // 3], "corrupt or truncated PNG"),
        "garbled.png": (raw[:40] + b"\x00" * 20 + raw[60:], "corrupt"),
        "notes.png": (b"hello, not an image\n", "not a PNG file"),
        "empty.png": (b"", "empty file"),
    }
    for name, (content, problem) in cases.items():
        path = tmp_path / name
        path.write_bytes(content)
        with pytest.raises(InputError, match=problem) as caught:
            read_volume(path)
        assert caught.value.path == path and name in str(caught.value)
    tifffile.imwrite(tmp_path / "tiff.png", ramp((32, 32)))
    with pytest.raises(InputError, match="not a PNG file"):
        read_volume(tmp_path / "tiff.png")
    with pytest.raises(InputError, match="too small"):
        Image.fromarray(noisy[:8, :8]).save(tmp_path / "tiny.png")
        read_volume(tmp_path / "tiny.png")
    layer = tmp_path / "stack" / "stack_layer01.png"
    layer.parent.mkdir()
    Image.fromarray(noisy).save(layer)
    with pytest.raises(InputError, match="single PNG layer of a folder stack"):
        read_volume(layer)
