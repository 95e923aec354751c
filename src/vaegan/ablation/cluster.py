"""Cells of a grid as jobs of a cluster scheduler (`vaegan ablate --executor slurm`), through submitit.

Each cell is one task of a job array whose state is its run directory: a task that Slurm preempts or stops at
its time limit is requeued (submitit's checkpoint hook) and resumes from the cell's last checkpoint, and a
finished cell is only read. `--executor local` runs the same jobs as processes of this machine, to try a grid
file before sending it to a cluster. submitit is an optional extra: pip install 'vaegan[slurm]'.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

from vaegan.errors import VaeganError

EXECUTORS = ("slurm", "local")


def _submitit():
    try:
        import submitit
    except ImportError:
        raise VaeganError("--executor slurm needs submitit: pip install 'vaegan[slurm]' (or pip install submitit)"
                          ) from None
    return submitit


def _require_slurm() -> None:
    """submitit needs `srun` to build its executor (else a RuntimeError) and `sbatch` to submit (else an
    OSError): say so in one line, before any job is made."""
    missing = [command for command in ("sbatch", "srun") if shutil.which(command) is None]
    if missing:
        raise VaeganError(f"--executor slurm: Slurm was not found ({' and '.join(f'`{c}`' for c in missing)} not "
                          "on PATH); run on the cluster's login node, or here with --executor local or the default "
                          "--executor pool (--jobs N for cells in parallel)")


def run_cluster(jobs: list, work: Callable, kind: str, folder: Path, timeout_minutes: int, gpus: int,
                parallel: int) -> Iterator[tuple[object, dict | None, str | None]]:
    """Submit `work(job, "auto")` for every job as one array; yield (job, result, error) as each finishes."""
    submitit = _submitit()
    if kind == "slurm":
        _require_slurm()

    class CellTask(submitit.helpers.Checkpointable):
        """Requeued with the same arguments when stopped: the run directory holds the progress."""

        def __call__(self, job):
            return work(job, "auto")

    executor = submitit.AutoExecutor(folder=folder, cluster=kind)
    executor.update_parameters(timeout_min=timeout_minutes, gpus_per_node=gpus, slurm_array_parallelism=parallel,
                               name="vaegan-ablate")
    with executor.batch():
        submitted = [(job, executor.submit(CellTask(), job)) for job in jobs]
    for job, handle in submitted:
        try:
            yield job, handle.result(), None
        except Exception as err:  # the task's own error, re-raised by submitit with its traceback
            lines = str(err).strip().splitlines()
            yield job, None, lines[-1] if lines else type(err).__name__
