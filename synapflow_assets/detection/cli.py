"""Command-line entry points of the detector: ``train-detector`` and ``detect`` (plain argparse)."""
from __future__ import annotations

import argparse
import sys
import time
from dataclasses import fields
from pathlib import Path

from .inputs import read_input as _read_input


def _train_parser() -> argparse.ArgumentParser:
    from .training import TrainConfig

    defaults = TrainConfig()
    parser = argparse.ArgumentParser(prog="synapflow_assets train-detector",
                                     description="Train the RT-DETR spine detector (simulated + real layers).")
    parser.add_argument("--out", required=True, help="output folder (checkpoint/, best/, model/, history.json)")
    parser.add_argument("--resume", default=None, help="checkpoint folder to continue from (e.g. OUT/checkpoint)")
    parser.add_argument("--steps", type=int, default=defaults.steps)
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    parser.add_argument("--crop", type=int, default=defaults.crop, help="crop size of real-data batches")
    parser.add_argument("--sim-crop", type=int, default=defaults.sim_crop)
    parser.add_argument("--init", default=defaults.init, help="detector folder to fine-tune (default: random weights)")
    parser.add_argument("--extra-labels", default=defaults.extra_labels,
                        help="CSV of corrected boxes from `review --labels` (added to the training data)")
    parser.add_argument("--raw-layers", type=int, default=defaults.raw_layers, help="rendered raw-like training layers")
    parser.add_argument("--val-raw-layers", type=int, default=defaults.val_raw_layers,
                        help="held-out raw-like validation layers (the gate's set)")
    parser.add_argument("--pixel-size", dest="pixel_size_um", type=float, default=defaults.pixel_size_um,
                        help="pixel size (um/px) the detector works at")
    parser.add_argument("--pretrain-steps", type=int, default=defaults.pretrain_steps,
                        help="first steps on simulated layers only")
    parser.add_argument("--lr", type=float, default=defaults.lr)
    parser.add_argument("--weight-decay", type=float, default=defaults.weight_decay)
    parser.add_argument("--warmup-steps", type=int, default=defaults.warmup_steps)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--sim-animals", type=int, default=defaults.sim_animals)
    parser.add_argument("--eval-every", type=int, default=defaults.eval_every)
    parser.add_argument("--checkpoint-every", type=int, default=defaults.checkpoint_every)
    parser.add_argument("--model", choices=["default", "tiny"], default=defaults.model)
    parser.add_argument("--threads", type=int, default=defaults.threads)
    parser.add_argument("--max-minutes", type=float, default=defaults.max_minutes,
                        help="stop with a checkpoint after this wall time (0: no limit)")
    parser.add_argument("--sim-size", type=int, default=defaults.sim_size, help="pixels per side of simulated layers")
    parser.add_argument("--val-sim-animals", type=int, default=defaults.val_sim_animals)
    parser.add_argument("--no-real-val", action="store_true", help="skip the real validation split")
    parser.add_argument("--no-register", action="store_true",
                        help="train only: log nothing to MLflow, register no version")
    parser.add_argument("--data-root", default="data", help="data folder holding mlflow/ (default: data)")
    parser.add_argument("--run-name", default=None, help="MLflow run name")
    return parser


def train_detector_main(argv: list[str]) -> int:
    """``python -m synapflow_assets train-detector ...``: train, checkpoint, evaluate, save, then log the
    run to MLflow, register a version of ``spine-detector`` and apply the champion gate (unless
    ``--no-register``).

    Parameters
    ----------
    argv : list of str

    Returns
    -------
    int
        Exit status (2 when registration fails; the message names the registry).
    """
    from ..progress import Progress
    from .registry import RegistryError
    from .train_register import train_and_register
    from .training import TrainConfig

    args = _train_parser().parse_args(argv)
    names = {f.name for f in fields(TrainConfig)}
    values = {k: v for k, v in vars(args).items() if k in names}
    config = TrainConfig(**values, real_val=not args.no_real_val)
    start = time.perf_counter()
    try:
        with Progress(config.steps, "training", unit="step") as bar:
            result = train_and_register(config, Path(args.out), args.data_root, args.resume, not args.no_register,
                                        args.run_name, log=bar.line,
                                        progress=lambda done, total: bar.step(done, f"step {done}/{total}"))
    except (RegistryError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    final = result["final"]
    best = final.get("best") or {}
    print(f"done: step {final['step']}, {final['wall_seconds']:.0f} s of training "
          f"({time.perf_counter() - start:.0f} s this run); best {best.get('metric')} {best.get('score', float('nan')):.3f} "
          f"at step {best.get('step')}; model in {Path(args.out) / 'model'}, best in {Path(args.out) / 'best'}")
    return 0


def detect_main(argv: list[str]) -> int:
    """``python -m synapflow_assets detect IMAGE_OR_STACK... --out boxes.csv [--model FOLDER] [--score 0.5]``.

    Writes one row per box: ``filename,width,height,class,score,xmin,ymin,xmax,ymax``
    plus ``layer`` (empty for single layers) when any input is a stack.

    Parameters
    ----------
    argv : list of str

    Returns
    -------
    int
        0, or 2 on a bad input or model (the message names the file).
    """
    import polars as pl

    from ..progress import Progress
    from ..settings import DEFAULT_SCORE_THRESHOLD
    from .inference import DetectorError, SpineDetector
    from .champion import ensure_champion, load_champion
    from .registry import RegistryError, tracking_uri

    parser = argparse.ArgumentParser(prog="synapflow_assets detect", description="Detect spines on layers or stacks.")
    parser.add_argument("inputs", nargs="+", help="PNG / TIFF layers or stacks (or folders of PNG layers)")
    parser.add_argument("--out", required=True, help="CSV to write")
    parser.add_argument("--model", default=None,
                        help="detector folder (default: the champion of the MLflow registry under --data-root)")
    parser.add_argument("--data-root", default="data", help="data folder holding mlflow/ (default: data)")
    parser.add_argument("--score", type=float, default=DEFAULT_SCORE_THRESHOLD,
                        help=f"minimal score (default {DEFAULT_SCORE_THRESHOLD}, as the pipeline)")
    parser.add_argument("--channel", type=int, default=None, help="channel of multi-channel TIFFs (default: the brightest)")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--pixel-size", type=float, default=None,
                        help="x/y pixel size in um (default: the file's, else estimated from the dendrite width)")
    parser.add_argument("--upscale", type=float, default=None, help="extra test-time zoom (default: none)")
    parser.add_argument("--box-scale", type=float, default=None, help="box-size factor (default: the model's)")
    parser.add_argument("--tile", type=int, default=None, help="tile size in pixels (default: the model's)")
    args = parser.parse_args(argv)
    try:
        if args.model:
            detector, where = SpineDetector.load(args.model), args.model
        else:
            ensure_champion(args.data_root)
            detector, info = load_champion(args.data_root)
            where = f"{info.name} version {info.version} (champion) in {tracking_uri(args.data_root)}"
        detector.set_options(args.upscale, args.box_scale, args.tile)
    except (DetectorError, RegistryError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"model: {where}", flush=True)
    frames, any_stack = [], False
    bar = Progress(len(args.inputs), "inputs", unit="input")
    for done, name in enumerate(args.inputs):
        path = Path(name)
        bar.step(done, path.name)
        layers = lambda d, t, n, done=done, name=path.name: bar.step(done, f"{name}: layer {d}/{t}, {n} boxes")
        try:
            if not path.exists():
                raise ValueError("no such file or folder")
            array, is_stack, notes, pixel = _read_input(path, channel=args.channel, pixel_size_um=args.pixel_size)
            boxes = (detector.detect_stack(array, args.score, args.batch_size, pixel_size_um=pixel, progress=layers) if is_stack
                     else detector.detect_layer(array, args.score, pixel_size_um=pixel)
                     .with_columns(pl.lit(None, pl.Int64).alias("layer")))
        except Exception as error:  # noqa: BLE001 - reported with the file name
            bar.close()
            print(f"error: {error}" if str(path) in str(error) else f"error: {path}: {error}", file=sys.stderr)
            return 2
        any_stack |= is_stack
        height, width = array.shape[-2:]
        frames.append(boxes.select(
            pl.lit(path.name).alias("filename"), pl.lit(width, pl.Int64).alias("width"),
            pl.lit(height, pl.Int64).alias("height"), pl.col("type").alias("class"), "score",
            "xmin", "ymin", "xmax", "ymax", "layer"))
        bar.line(f"{path}: {len(boxes)} boxes" + (f" ({'; '.join(notes)})" if notes else ""))
    bar.close()
    table = pl.concat(frames) if frames else pl.DataFrame()
    if not any_stack:
        table = table.drop("layer")
    table.write_csv(args.out)
    print(f"{args.out}: {len(table)} boxes from {len(args.inputs)} inputs")
    return 0


if __name__ == "__main__":
    sys.exit(train_detector_main(sys.argv[1:]))
