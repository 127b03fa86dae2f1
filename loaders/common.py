"""Reading a raw CSV with the columns a loader needs, failing with the file and what is missing."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from sim.errors import DataError


def read_checked_csv(path: Path, columns: tuple[str, ...], **read_kw) -> pd.DataFrame:
    """``pandas.read_csv(path)`` with a DataError naming the file if it is absent, unreadable, lacks one of
    ``columns`` or has no data rows."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        df = pd.read_csv(path, **read_kw)
    except (OSError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read as CSV ({exc})") from None
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {missing}; expected {list(columns)}")
    if df.empty:
        raise DataError(f"{path}: no data rows")
    return df
