"""Write files all or nothing: a temporary sibling, then a rename."""
import os
import uuid
from pathlib import Path

import polars as pl


def write_parquet_atomic(table: pl.DataFrame, path: Path) -> Path:
    """Write ``table`` to ``path`` so that readers see the old file or the new one, never a part."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        table.write_parquet(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
