"""The README's detector figures are the shipped champion's, as its MLflow run logs them."""

import json
from pathlib import Path

from synapflow_assets.detection import lifecycle as C
from synapflow_assets.detection.figures import END, START, figure_rows, shipped_block
from synapflow_assets.detection.lifecycle import SHIPPED_FOLDER

from .conftest import mlflow_client

README = Path(__file__).parents[1] / "README.md"


def test_the_readme_states_the_shipped_detectors_logged_metrics(data_root):
    text = README.read_text()
    block = text[text.index(START) : text.index(END) + len(END)]
    assert block == shipped_block(), "README detector figures are stale: python -m synapflow_assets.detection.figures"
    logged = mlflow_client(data_root).get_run(C.ensure_champion(data_root).run_id).data.metrics
    for name in ("val_raw.ap50", "val_raw.precision", "val_raw.recall", "val_real.ap50", "val_real.map50"):
        shown = f"{logged[name]:.3f}" if name.endswith("ap50") and "map" not in name else f"{logged[name]:.2f}"
        assert shown in block, (name, shown)
    assert f"{int(logged['val_invivo.matched'])} of {int(logged['val_invivo.n_peer'])} found" in block


def test_the_rows_follow_the_metrics():
    metrics = json.loads((SHIPPED_FOLDER / "metrics.json").read_text())
    metrics["val_raw"]["ap50"] = 0.851
    rows = "\n".join(figure_rows(metrics))
    assert "AP50 | 0.851;" in rows and "0.614" not in rows
