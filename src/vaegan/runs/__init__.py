"""Everything about a run's files: their names (RunDir), atomic writes, checkpoints, metrics, the lock, and
where and on what a run computes. A low floor: it imports nothing from training, evaluation or viz."""

from vaegan.runs.files import OutputFolder, atomic_write, write_json
from vaegan.runs.rundir import RunDir, RunStatus

__all__ = ["OutputFolder", "RunDir", "RunStatus", "atomic_write", "write_json"]
