"""Per-session CSV exports in the reference tool's column layout, so existing scripts keep working."""

from pathlib import Path

from .feature_store import query

EXPORT_SQL = Path(__file__).with_name("export.sql").read_text()


def export_sessions(store: Path, out_dir: Path) -> list[Path]:
    """Write ``<out_dir>/<animal>/<session>.csv`` for every session in the store.

    Columns: ``id, filename, width, height, class, score, xmin, ymin, xmax,
    ymax`` (the reference layout; ``id`` is the 3D spine id, -1 for boxes not
    in a spine) followed by ``layer, interpolated`` and the spine's features.
    """
    table = query(store, EXPORT_SQL)
    written = []
    for (animal, session), rows in table.group_by("animal", "session", maintain_order=True):
        path = Path(out_dir) / animal / f"{session}.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        rows.drop("animal", "session").write_csv(path)
        written.append(path)
    return written
