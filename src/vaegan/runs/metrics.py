"""`metrics.jsonl`: one JSON object per line, appended and flushed as training goes."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

from vaegan.runs.files import write_error


class MetricsLog:
    def __init__(self, path: Path):
        self.path = Path(path)

    def write(self, **record: Any) -> None:
        self.write_many([record])

    def write_many(self, records: list[dict[str, Any]]) -> None:
        """Append records (stamped with the time) in one write."""
        now = round(time.time(), 3)
        lines = "".join(json.dumps({**{k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                                       for k, v in record.items()}, "time": now}) + "\n" for record in records)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a") as f:
                f.write(lines)
        except OSError as err:
            raise write_error(self.path, err) from None

    def offset(self) -> int:
        """Bytes written so far: a checkpoint stores it so a resumed run can drop later lines."""
        return self.path.stat().st_size if self.path.is_file() else 0

    def truncate(self, offset: int) -> bool:
        """Drop what was written after `offset` bytes. A file that is shorter (deleted or cut by hand) is left
        as it is, never padded; returns whether it held everything up to `offset`."""
        if self.offset() < offset:
            return False
        try:
            with open(self.path, "r+b") as f:
                f.truncate(offset)
        except OSError as err:
            raise write_error(self.path, err) from None
        return True


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """All complete records of a metrics file; a torn last line (the process was killed mid-write), a line that
    is not UTF-8 or not a JSON object is skipped."""
    records = []
    path = Path(path)
    if not path.is_file():
        return records
    for line in path.read_bytes().splitlines():
        try:
            record = json.loads(line.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            continue
        if isinstance(record, dict):
            records.append(record)
    return records
