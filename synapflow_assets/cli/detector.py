"""The detector's commands: ``train-detector`` and ``detect``."""

from __future__ import annotations

import time
from pathlib import Path

import click

from ..detection.train_config import TrainConfig
from ..setting_sections import DEFAULT_SCORE_THRESHOLD
from .app import CommandError, app
from .params import model_options, model_values

#: The :class:`TrainConfig` fields ``train-detector`` exposes, in the order of its help.
TRAIN_FIELDS = (
    "steps",
    "batch_size",
    "crop",
    "sim_crop",
    "init",
    "extra_labels",
    "raw_layers",
    "val_raw_layers",
    "pixel_size_um",
    "pretrain_steps",
    "lr",
    "weight_decay",
    "warmup_steps",
    "seed",
    "sim_animals",
    "eval_every",
    "checkpoint_every",
    "model",
    "threads",
    "max_minutes",
    "sim_size",
    "val_sim_animals",
    "real_val",
    "type_weight_power",
)
#: Help of the fields the docstring of :class:`TrainConfig` leaves undescribed (or describes together).
TRAIN_HELP = {
    "batch_size": "images per optimiser step",
    "lr": "peak AdamW learning rate",
    "weight_decay": "AdamW weight decay",
    "seed": "seed of the weights, the simulated pools and the batches",
    "eval_every": "steps between evaluations",
    "checkpoint_every": "steps between checkpoints",
    "real_val": "skip the real validation split",
}


@app.command(
    "train-detector",
    expected=(ValueError,),
    help="Train the RT-DETR spine detector (simulated + real layers), then log the run to MLflow, register a "
    "version of spine-detector and apply the champion gate (unless --no-register).",
)
@click.option("--out", required=True, help="output folder (checkpoint/, best/, model/, history.json)")
@click.option("--resume", default=None, help="checkpoint folder to continue from (e.g. OUT/checkpoint)")
@model_options(
    TrainConfig,
    TRAIN_FIELDS,
    flags={"pixel_size_um": "pixel-size"},
    helps=TRAIN_HELP,
    choices={"model": ("default", "tiny")},
)
@click.option("--no-register", is_flag=True, help="train only: log nothing to MLflow, register no version")
@click.option("--data-root", default="data", show_default=True, help="data folder holding mlflow/")
@click.option("--run-name", default=None, help="MLflow run name")
@click.option(
    "--self-train",
    is_flag=True,
    help="fine-tune the champion (or --init) on the lab's own tracked spines in --data-root: boxes the detector "
    "found, the dim places tracking kept in other sessions of spines it found in >= 2, and corrections",
)
@click.option("--animal", "animals", multiple=True, help="with --self-train: learn from these animals only")
def train_detector(
    *,
    out: str,
    resume: str | None,
    no_register: bool,
    data_root: str,
    run_name: str | None,
    self_train: bool,
    animals: tuple[str, ...],
    **options,
) -> int:
    """Train, checkpoint, evaluate and save a detector; register and gate it unless ``--no-register``."""
    from ..detection.lifecycle import train_and_register
    from ..progress import Progress

    config = TrainConfig(**model_values(TrainConfig, options))
    tags = None
    if animals and not self_train:
        raise CommandError("--animal needs --self-train")
    if self_train:
        config, tags = _self_training(config, Path(out), data_root, animals)
        run_name = run_name or "self-train"
    start = time.perf_counter()
    with Progress(config.steps, "training", unit="step") as bar:
        result = train_and_register(
            config,
            Path(out),
            data_root,
            resume,
            not no_register,
            run_name,
            log=bar.line,
            progress=lambda done, total: bar.step(done, f"step {done}/{total}"),
            tags=tags,
        )
    final = result.final
    best = final.get("best") or {}
    print(
        f"done: step {final['step']}, {final['wall_seconds']:.0f} s of training "
        f"({time.perf_counter() - start:.0f} s this run); best {best.get('metric')} "
        f"{best.get('score', float('nan')):.3f} "
        f"at step {best.get('step')}; model in {Path(out) / 'model'}, best in {Path(out) / 'best'}"
    )
    return 0


def _self_training(
    config: TrainConfig, out: Path, data_root: str, animals: tuple[str, ...]
) -> tuple[TrainConfig, dict[str, str]]:
    """The training config of ``--self-train``: the lab's pseudo-labels as the extra pool, starting from the
    champion unless ``--init`` names weights; and the run tags saying what it learned from."""
    from dataclasses import replace

    from ..detection.lifecycle import ensure_champion
    from ..detection.self_training import pseudo_labels

    root = Path(data_root)
    if not (root / "features.duckdb").is_file():
        raise CommandError(f"--self-train: no feature store in {root}: run `ingest` on the lab's sessions first")
    if config.extra_labels:
        raise CommandError("--self-train makes its own labels: leave out --extra-labels")
    labels, summary = pseudo_labels(root, animals or None)
    if not len(labels):
        where = f" of {', '.join(animals)}" if animals else ""
        raise CommandError(f"--self-train: no tracked spines{where} in {root / 'features.duckdb'} to learn from")
    out.mkdir(parents=True, exist_ok=True)
    csv = out / "self_train_labels.csv"
    labels.write_csv(csv)
    init = config.init or str(ensure_champion(data_root).folder)
    print(
        f"self-training from {init} on {summary['boxes']} boxes ({summary['places']} places in "
        f"{summary['sessions']} sessions of {summary['animals']} animals): {summary['from_detector']} found by the "
        f"detector, {summary['from_redetected']} dim places tracking kept (spines found in >= 2 sessions), "
        f"{summary['from_corrections']} from corrections; labels in {csv}"
    )
    tags = {f"self_train.{key}": str(value) for key, value in summary.items()}
    tags["self_train.animals_named"] = ",".join(animals) or "all"
    return replace(config, extra_labels=str(csv), init=init), tags


def _load_detector(*, model: str | None, data_root: str):
    """The detector of ``--model``, else the registry's champion, and where it came from."""
    from ..detection.inference import SpineDetector
    from ..detection.lifecycle import ensure_champion, load_champion, tracking_uri

    if model:
        return SpineDetector.load(model), model
    ensure_champion(data_root)
    detector, info = load_champion(data_root)
    return detector, f"{info.name} version {info.version} (champion) in {tracking_uri(data_root)}"


@app.command(
    "detect",
    expected=(ValueError,),
    help="Detect spines on layers or stacks (PNG / TIFF). Writes one row "
    "per box: filename,width,height,class,score,xmin,ymin,xmax,ymax, plus layer when any input is a stack.",
)
@click.argument("inputs", nargs=-1, required=True)
@click.option("--out", required=True, help="CSV to write")
@click.option(
    "--model", default=None, help="detector folder (default: the champion of the MLflow registry under --data-root)"
)
@click.option("--data-root", default="data", show_default=True, help="data folder holding mlflow/")
@click.option(
    "--score", type=float, default=DEFAULT_SCORE_THRESHOLD, show_default=True, help="minimal score (as the pipeline)"
)
@click.option("--channel", type=int, default=None, help="channel of multi-channel TIFFs (default: the brightest)")
@click.option("--batch-size", type=int, default=4, show_default=True)
@click.option(
    "--pixel-size",
    type=float,
    default=None,
    help="x/y pixel size in um (default: the file's, else estimated from the dendrite width)",
)
@click.option("--upscale", type=float, default=None, help="extra test-time zoom (default: none)")
@click.option("--box-scale", type=float, default=None, help="box-size factor (default: the model's)")
@click.option("--tile", type=int, default=None, help="tile size in pixels (default: the model's)")
def detect(
    *,
    inputs: tuple[str, ...],
    out: str,
    model: str | None,
    data_root: str,
    score: float,
    channel: int | None,
    batch_size: int,
    pixel_size: float | None,
    upscale: float | None,
    box_scale: float | None,
    tile: int | None,
) -> int:
    """Run the detector on each input and write the boxes as CSV; a bad input ends it naming the file."""
    import polars as pl

    from ..detection.inputs import read_input
    from ..progress import Progress

    detector, where = _load_detector(model=model, data_root=data_root)
    detector.set_options(upscale, box_scale, tile)
    print(f"model: {where}", flush=True)
    frames, any_stack = [], False
    bar = Progress(len(inputs), "inputs", unit="input")
    for done, name in enumerate(inputs):
        path = Path(name)
        bar.step(done, path.name)
        layers = lambda d, t, n, done=done, name=path.name: bar.step(done, f"{name}: layer {d}/{t}, {n} boxes")
        try:
            if not path.exists():
                raise ValueError("no such file or folder")
            array, is_stack, notes, pixel = read_input(path, channel=channel, pixel_size_um=pixel_size)
            boxes = (
                detector.detect_stack(array, score, batch_size, pixel_size_um=pixel, progress=layers)
                if is_stack
                else detector.detect_layer(array, score, pixel_size_um=pixel).with_columns(
                    pl.lit(None, pl.Int64).alias("layer")
                )
            )
        except Exception as error:
            bar.close()
            raise CommandError(str(error) if str(path) in str(error) else f"{path}: {error}") from error
        any_stack |= is_stack
        height, width = array.shape[-2:]
        frames.append(
            boxes.select(
                pl.lit(path.name).alias("filename"),
                pl.lit(width, pl.Int64).alias("width"),
                pl.lit(height, pl.Int64).alias("height"),
                pl.col("type").alias("class"),
                "score",
                "xmin",
                "ymin",
                "xmax",
                "ymax",
                "layer",
            )
        )
        bar.line(f"{path}: {len(boxes)} boxes" + (f" ({'; '.join(notes)})" if notes else ""))
    bar.close()
    table = pl.concat(frames) if frames else pl.DataFrame()
    if not any_stack:
        table = table.drop("layer")
    table.write_csv(out)
    print(f"{out}: {len(table)} boxes from {len(inputs)} inputs")
    return 0
