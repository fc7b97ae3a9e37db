"""The tracking overlay says what its colours mean: a legend below the picture."""

import io

import numpy as np
from PIL import Image

from synapflow_assets.imaging.overlay import SESSION_COLOURS, STATUS_COLOURS, two_session_png


def colours_in(image: np.ndarray) -> set[tuple[int, int, int]]:
    return {tuple(int(v) for v in c) for c in np.unique(image.reshape(-1, 3), axis=0)}


def test_the_legend_shows_the_session_and_status_colours_drawn():
    rng = np.random.default_rng(0)
    previous, current = rng.random((160, 200)), rng.random((160, 200))
    boxes = np.array([[10, 10, 30, 30], [50, 50, 70, 70], [90, 20, 110, 40]])
    png = two_session_png(
        previous, current, boxes, ["1", "2", "3"], ["present", "new", "eliminated"], names=("d0", "d4")
    )
    picture = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
    assert picture.shape[1] == 200 and picture.shape[0] > 160
    legend = colours_in(picture[160:])
    assert {*SESSION_COLOURS.values(), *(STATUS_COLOURS[s] for s in ("present", "new", "eliminated"))} <= legend
    assert STATUS_COLOURS["unconfirmed"] not in legend  # only the statuses drawn are explained


def test_a_narrow_picture_wraps_its_legend_and_one_without_stays_as_it_was():
    image = np.random.default_rng(1).random((40, 60))
    narrow = Image.open(io.BytesIO(two_session_png(image, image, np.zeros((0, 4)), [])))
    assert narrow.width == 60 and narrow.height >= 40 + 3 * 14
    plain = Image.open(io.BytesIO(two_session_png(image, image, np.zeros((0, 4)), [], legend=False)))
    assert plain.size == (60, 40)
