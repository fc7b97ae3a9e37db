"""The shipped champion's figures as the README states them, generated from its ``metrics.json`` (the metrics
its MLflow run logs), so that the README cannot drift from the registered model."""

from __future__ import annotations

import json
from pathlib import Path

from .lifecycle import SHIPPED_FOLDER

START, END = "<!-- detector-figures:start -->", "<!-- detector-figures:end -->"


def _types(per_type: dict) -> str:
    ordered = sorted(per_type.items(), key=lambda item: -item[1])
    return ", ".join(f"{name} {value:.2f}" for name, value in ordered)


def figure_rows(metrics: dict) -> list[str]:
    """Markdown table rows (``| what | figure |``) of a detector's validation metrics."""
    raw, real, invivo = metrics["val_raw"], metrics["val_real"], metrics["val_invivo"]
    threshold = metrics["score_threshold"]
    return [
        "| shipped detector (`detection/shipped/metrics.json`, logged to its MLflow run) | figure |",
        "|---|---|",
        f"| raw-like held-out layers ({raw['n_images']}, {raw['n_truth']} spines), AP50 | {raw['ap50']:.3f}; "
        f"precision {raw['precision']:.2f}, recall {raw['recall']:.2f} at score {threshold:g}; mAP50 "
        f"{raw['map50']:.2f} ({_types(raw['ap50_per_type'])}) |",
        f"| real `spine2d` val split ({real['n_images']} images, {real['n_truth']} spines), AP50 | {real['ap50']:.3f}; "
        f"recall {real['recall']:.2f} at precision {real['precision']:.2f}; 5-type mAP50 {real['map50']:.2f} "
        f"({_types(real['ap50_per_type'])}) |",
        f"| raw in-vivo layers vs a peer detector's boxes | {invivo['matched']} of {invivo['n_peer']} found "
        f"({invivo['found']:.2f}) with {invivo['n_predicted']} boxes ({invivo['count_ratio']:.2f}x) |",
        f"| training | step {metrics['step']} of {metrics['training_steps_total']}, "
        f"{metrics['training_wall_seconds'] / 60:.0f} min; {metrics['parameters'] / 1e6:.1f} M parameters; "
        f"{metrics['layers_per_second_512']:.1f} layers/s at 512x512 on 2 CPU threads |",
    ]


def shipped_block(folder: Path = SHIPPED_FOLDER) -> str:
    """The README block (markers included) of the shipped detector."""
    metrics = json.loads((Path(folder) / "metrics.json").read_text())
    return "\n".join([START, *figure_rows(metrics), END])


def rewrite_readme(readme: Path, folder: Path = SHIPPED_FOLDER) -> bool:
    """Replace the block between the markers in ``readme``; True when it changed."""
    text = Path(readme).read_text()
    head, _, rest = text.partition(START)
    _, _, tail = rest.partition(END)
    if not rest:
        raise ValueError(f"{readme}: no {START} marker")
    updated = head + shipped_block(folder) + tail
    Path(readme).write_text(updated)
    return updated != text


if __name__ == "__main__":
    import sys

    print("changed" if rewrite_readme(Path(sys.argv[1] if len(sys.argv) > 1 else "README.md")) else "unchanged")
