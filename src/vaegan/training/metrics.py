"""`metrics.jsonl`: one JSON object per line, appended and flushed as training goes."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any


class MetricsLog:
    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.touch(exist_ok=True)

    def write(self, **record: Any) -> None:
        record["time"] = round(time.time(), 3)
        clean = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in record.items()}
        with open(self.path, "a") as f:
            f.write(json.dumps(clean) + "\n")

    def offset(self) -> int:
        """Bytes written so far: a checkpoint stores it so a resumed run can drop later lines."""
        return self.path.stat().st_size

    def truncate(self, offset: int) -> None:
        with open(self.path, "r+b") as f:
            f.truncate(offset)


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """All complete records; a torn last line (the process was killed mid-write) is ignored."""
    records = []
    for line in Path(path).read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records
