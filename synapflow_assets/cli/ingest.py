"""The pipeline's commands: ``simulate``, ``ingest`` and ``demo`` (both, then a query)."""

from __future__ import annotations

import dataclasses
import sys
import time
import typing
from pathlib import Path
from typing import cast

import click
from pydantic import BaseModel

from ..imaging.errors import InputError
from ..settings import LabSettings, load_settings
from ..stopping import stop_on_signals
from .app import CommandError, app, check_data_root, data_option

DEMO_QUERY = (
    "SELECT animal, session, round(survival_fraction, 3) AS survival, "
    "printf('%.3f [%.3f, %.3f]', formation_rate, formation_low, formation_high) AS formation_95, "
    "printf('%.3f [%.3f, %.3f]', elimination_rate, elimination_low, elimination_high) AS elimination_95 "
    "FROM survival_curve"
)

SETTINGS_FLAGS = {
    "pixel-size": ("imaging", "pixel_size_um"),
    "pixel-size-estimate": ("imaging", "estimate_pixel_size"),
    "z-step": ("imaging", "z_step_um"),
    "channel": ("imaging", "channel"),
    "n-channels": ("imaging", "n_channels"),
    "min-layers": ("imaging", "min_layers"),
    "score": ("detection", "score_threshold"),
    "upscale": ("detection", "upscale"),
    "box-scale": ("detection", "box_scale"),
    "tile": ("detection", "tile"),
    "min-trusted-blocks": ("alignment", "min_trusted_blocks"),
    "min-global-peak": ("alignment", "min_global_peak"),
    "min-margin": ("alignment", "min_margin"),
    "max-rotation": ("alignment", "max_rotation_deg"),
    "max-z-shift": ("alignment", "max_z_shift"),
}
"""``{flag: (section, option)}`` of the flags that override ``synapflow.yaml``; type, help and default come
from the option in :mod:`synapflow_assets.settings`. A true-by-default switch is ``--no-<flag>``."""


def _settings_field(section: str, name: str):
    model = LabSettings.model_fields[section].annotation
    return cast(type[BaseModel], model).model_fields[name]


def simulation_options(function):
    """The options ``simulate`` and ``demo`` share."""
    for flag, default, help_text in reversed(
        (
            ("--animals", 2, None),
            ("--sessions", 3, None),
            ("--layers", 32, None),
            ("--size", 512, "pixels per side of a layer"),
            ("--seed", 0, None),
        )
    ):
        function = click.option(flag, type=int, default=default, show_default=True, help=help_text)(function)
    return function


def settings_options(function):
    """The :data:`SETTINGS_FLAGS` as options named after their settings fields (unset: None, so the landing's
    ``synapflow.yaml`` files, else the default, decide)."""
    for flag, (section, name) in reversed(SETTINGS_FLAGS.items()):
        field = _settings_field(section, name)
        help_text = f"{field.description} [{section}.{name}"
        help_text += "]" if field.default is None or isinstance(field.default, bool) else f", default {field.default}]"
        if field.annotation is bool:
            option = click.option(
                f"--no-{flag}", name, is_flag=True, flag_value=False, default=None, help=f"turn off: {help_text}"
            )
        else:
            kind = next(t for t in typing.get_args(field.annotation) or (field.annotation,) if t is not type(None))
            option = click.option(f"--{flag}", name, type=kind, default=None, help=help_text)
        function = option(function)
    return function


def settings_resources(*, source: str = "model", **values) -> dict:
    """The ``imaging``, ``detection`` and ``alignment`` resources of the settings flags.

    Parameters
    ----------
    source : str, optional
        Where boxes come from (``model``, ``imported`` or ``baseline``).
    **values
        Settings options by field name (``pixel_size_um``, ...; see :data:`SETTINGS_FLAGS`); unset or None:
        not overridden.

    Returns
    -------
    dict
        Keyword arguments of :func:`synapflow_assets.pipeline.process_landed`.
    """
    from ..defs.resources import AlignmentSettings, DetectionSettings, ImagingSettings

    sections: dict[str, dict] = {"imaging": {}, "detection": {"source": source}, "alignment": {}}
    for section, name in SETTINGS_FLAGS.values():
        if values.get(name) is not None:
            sections[section][name] = values[name]
    try:  # the flags meet the bounds of the settings model before anything runs
        load_settings(overrides={k: {n: v for n, v in o.items() if n != "source"} for k, o in sections.items()})
    except InputError as error:
        message = error.problem
        for flag, (section, name) in SETTINGS_FLAGS.items():
            message = message.replace(f"{section}.{name}:", f"--{flag} ({section}.{name}):")
        raise CommandError(message) from None
    return {
        "imaging": ImagingSettings(**sections["imaging"]),
        "detection": DetectionSettings(**sections["detection"]),
        "alignment": AlignmentSettings(**sections["alignment"]),
    }


source_option = click.option(
    "--source",
    type=click.Choice(["model", "imported", "baseline"]),
    default="model",
    show_default=True,
    help="where boxes come from: the champion detector, <session>.detections.csv beside each session, "
    "or the LoG baseline",
)


@app.command("simulate", help="Write simulated sessions with ground truth to a landing folder.")
@click.option("--out", default="data/landing", show_default=True)
@click.option("--single-plane", is_flag=True, help="write each session as one plane (its projection)")
@click.option(
    "--profile",
    type=click.Choice(["default", "mip-timelapse", "mip-days"]),
    default="default",
    show_default=True,
    help="mip-*: a lab's single-plane 1024 px uint8 MIP time-lapse without pixel size (--animals series of "
    "--sessions sessions; --layers, --size and --single-plane do not apply); mip-timelapse: hours apart on one "
    "day, mip-days: days apart with turnover",
)
@click.option(
    "--detections", is_flag=True, help="mip profiles: also write imported detections with a real detector's defects"
)
@simulation_options
def simulate(
    *,
    out: str,
    single_plane: bool = False,
    profile: str = "default",
    detections: bool = False,
    animals: int,
    sessions: int,
    layers: int,
    size: int,
    seed: int,
) -> int:
    """Simulate ``animals`` x ``sessions`` stacks of ``layers`` x ``size`` x ``size`` pixels into ``out``
    (``--profile default``), or ``animals`` series of ``sessions`` MIP sessions (``mip-timelapse``, ``mip-days``)."""
    from ..synthetic import SimulationParams, simulate_landing

    if profile != "default":
        from ..synthetic.mip_timelapse import simulate_mip_timelapse

        start = time.perf_counter()
        paths = simulate_mip_timelapse(
            Path(out), series=animals, sessions=sessions, seed=seed, profile=profile, detections=detections
        )
        print(f"{len(paths)} sessions ({profile}) in {out} ({time.perf_counter() - start:.1f} s)")
        return 0
    params = SimulationParams(shape=(layers, size, size))
    if single_plane:
        params = dataclasses.replace(params, layer_jitter_px=0.0)
    start = time.perf_counter()
    paths = simulate_landing(
        Path(out), animals=animals, sessions=sessions, seed=seed, params=params, single_plane=single_plane
    )
    print(f"{len(paths)} sessions in {out} ({time.perf_counter() - start:.1f} s)")
    return 0


def _process(instance, lake, resources: dict, wait: bool, drop_removed: bool = False) -> tuple:
    """Run :func:`~synapflow_assets.pipeline.process_landed` with a progress bar; its report and the session rows."""
    from ..pipeline import SETTLE_WAIT_SECONDS, process_landed, session_summary
    from ..progress import Progress

    with Progress(0, "partitions", unit="partition") as bar:

        def progress(done: int, total: int, line: str) -> None:
            bar.bar.total = total
            bar.step(done, line)
            if line.startswith("waiting"):
                bar.line(f"  {line}")
            elif not line.endswith("up to date"):
                bar.line(f"  running {line}")

        report = process_landed(
            instance,
            lake,
            **resources,
            progress=progress,
            settle_wait=SETTLE_WAIT_SECONDS if wait else 0.0,
            drop_removed=drop_removed,
        )
        return report, session_summary(instance)


def run_ingest(*, data: str, resources: dict, wait: bool = True, drop_removed: bool = False) -> int:
    """Materialize the stale assets of every landed session under ``data`` and print what happened.

    Parameters
    ----------
    data : str
        The data root (a folder or an object-store URL).
    resources : dict
        :func:`settings_resources`.
    wait : bool, optional
        Wait (up to 10 min, saying so) for sessions still being written, rather than list them as WAITING.
    drop_removed : bool, optional
        Drop the sessions gone from the landing folder (see :func:`~synapflow_assets.pipeline.drop_session`).

    Returns
    -------
    int
        0, or 1 when a partition failed or an input was skipped.
    """
    from ..defs.instance import instance_home, open_instance
    from ..defs.resources import lake_from_environment

    lake = lake_from_environment(data)
    start = time.perf_counter()
    with stop_on_signals(), open_instance(data) as instance:
        lake.store_path  # noqa: B018 - an object-store root without a feature-store file fails here, before any run
        report, rows = _process(instance, lake, resources, wait, drop_removed)
    print(
        f"partitions: {len(report.materialized)} run, {len(report.up_to_date)} up to date, "
        f"{len(report.failed)} failed, {len(report.skipped)} skipped ({time.perf_counter() - start:.1f} s)"
    )
    for partition in report.materialized:
        print(f"  ran {partition}")
    for line in report.warnings:
        print(f"  WARNING {line}")
    for line in report.waiting:
        print(f"  WAITING {line}")
    for line in report.removed:
        print(f"  REMOVED {line}")
    if rows:
        import polars as pl

        with pl.Config(tbl_rows=-1, tbl_width_chars=160, fmt_str_lengths=60, tbl_hide_dataframe_shape=True):
            print(pl.DataFrame(rows))
    animals = sorted({row["partition"].split("/")[0] for row in rows})
    print(
        f"{len(rows)} sessions of {len(animals)} animals; outputs under {data.rstrip('/')}/volumes, "
        "/detections, /spines"
    )
    print(
        f"dagster instance: {instance_home(data)} (open it with `make ui`, or DAGSTER_HOME={instance_home(data)} "
        "dagster dev -w workspace.yaml)"
    )
    for problem in report.skipped:
        print(f"SKIPPED {problem}", file=sys.stderr)
    for partition, message in report.failed.items():
        print(f"FAILED {partition}: {message}", file=sys.stderr)
    if report.failed or report.skipped:
        print(
            f"{len(report.failed) + len(report.skipped)} problems: fix the inputs named above and rerun ingest "
            "(full logs: make ui, then Runs)",
            file=sys.stderr,
        )
        return 1
    return 0


@app.command(
    "ingest",
    help="Materialize the stale assets of every landed session. The settings flags override "
    "landing/synapflow.yaml and landing/<animal>/synapflow.yaml.",
)
@data_option("data root (landing/, volumes/)")
@settings_options
@source_option
@click.option("--create", is_flag=True, help="start a new data root when --data names none yet")
@click.option(
    "--no-wait",
    "wait",
    is_flag=True,
    flag_value=False,
    default=True,
    help="list sessions still being written as WAITING instead of waiting for them (up to 10 min)",
)
@click.option(
    "--drop-removed",
    is_flag=True,
    help="drop the sessions gone from the landing folder (their store rows, outputs and partitions) and "
    "recompute their animals without them; by default they are kept, counted, and reported as REMOVED",
)
def ingest(*, data: str, create: bool = False, wait: bool = True, drop_removed: bool = False, **settings) -> int:
    """Ingest the landed sessions with the settings flags."""
    resources = settings_resources(**settings)
    check_data_root(data, create=create)
    return run_ingest(data=data, resources=resources, wait=wait, drop_removed=drop_removed)


@app.command("demo", help="Simulate an example and run every asset.")
@simulation_options
@data_option("data root (landing/, volumes/)")
def demo(*, data: str, **simulation) -> int:
    """``simulate`` into ``DATA/landing``, ``ingest`` it, then query its survival curve."""
    from .store import run_sql

    assert simulate.callback is not None
    with stop_on_signals():
        simulate.callback(out=str(Path(data) / "landing"), **simulation)
    status = run_ingest(data=data, resources=settings_resources())
    store = Path(data) / "features.duckdb"
    print(f'\nfeature store {store}: python -m synapflow_assets sql "{DEMO_QUERY}"')
    return status or run_sql(query=DEMO_QUERY, store=str(store))
