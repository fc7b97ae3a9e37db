"""The champion gate between two detector folders, in a throwaway MLflow registry.

Both folders are scored on the same sets (``shipping.final_metrics``: the
raw-like validation layers of the gate, the real val split, the in-vivo
layers); ``--old`` is registered first (the champion), ``--new`` second, and
``champion.promote_if_better`` decides on ``val_ap50`` exactly as after a
training run. Used to decide which weights ship.

Run: .venv/bin/python bench/gate_shipped.py --old OLD_FOLDER --new NEW_FOLDER [--root /tmp/gate]
Prints both scores, the decision and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path


def scored_copy(folder: Path, dest: Path) -> dict:
    from synapflow_assets.detection.detector_files import CONFIG_FILE, WEIGHTS_FILE
    from synapflow_assets.detection.inference import SpineDetector
    from synapflow_assets.detection.lifecycle import final_metrics

    dest.mkdir(parents=True, exist_ok=True)
    for name in (WEIGHTS_FILE, CONFIG_FILE):
        shutil.copyfile(folder / name, dest / name)
    metrics = final_metrics(SpineDetector.load(folder, device="cpu"))
    (dest / "metrics.json").write_text(json.dumps(metrics, indent=2, default=float))
    return metrics


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old", type=Path, required=True)
    parser.add_argument("--new", type=Path, required=True)
    parser.add_argument("--root", type=Path, default=None, help="throwaway data root (default: a temporary folder)")
    args = parser.parse_args()

    from synapflow_assets.detection import lifecycle
    from synapflow_assets.detection.lifecycle import GATE_KEY, SOURCE_TAG, validation_score

    root = args.root or Path(tempfile.mkdtemp(prefix="gate-"))
    old = scored_copy(args.old, root / "old")
    new = scored_copy(args.new, root / "new")
    lifecycle.ensure_champion(root, shipped_folder=root / "old")
    score, source = validation_score(new)
    run_id = lifecycle.log_training_run(
        root / "new",
        {"folder": str(args.new)},
        {**new, GATE_KEY: score},
        [],
        data_root=root,
        run_name="candidate",
        tags={SOURCE_TAG: source},
    )
    version = lifecycle.model_version_for_run(run_id, root)
    decision = lifecycle.promote_if_better(version, score_key=GATE_KEY, data_root=root)
    for name, metrics in (("old", old), ("new", new)):
        raw, real = metrics["val_raw"], metrics.get("val_real", {})
        invivo = metrics.get("val_invivo", {})
        print(
            f"{name}: raw-like AP50 {raw['ap50']:.3f} (mAP50 {raw.get('map50', float('nan')):.3f}), "
            f"spine2d val AP50 {real.get('ap50', float('nan')):.3f} (mAP50 {real.get('map50', float('nan')):.3f}), "
            f"in vivo found {invivo.get('found', float('nan')):.2f} at "
            f"{invivo.get('count_ratio', float('nan')):.2f}x boxes"
        )
    print(f"gate on {GATE_KEY} [{source}]: {'promoted' if decision.promoted else 'kept'} ({decision.reason})")
    print(
        json.dumps(
            {
                "bench": "gate_shipped",
                "root": str(root),
                "source": source,
                "decision": decision.as_dict(),
            },
            default=str,
        )
    )


if __name__ == "__main__":
    main()
