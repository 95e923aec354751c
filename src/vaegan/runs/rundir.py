"""A run directory: the name of every file in it, its lock, and one answer to "how far is this run?".

    config.yaml             the resolved config
    metrics.jsonl           one JSON object per line: kind "train" (every step) or "test" (every epoch end)
    checkpoints/last.pt     everything needed to resume (see checkpoint.py)
    model.pt                final weights (a plain state_dict; with EMA on, the generator is the EMA copy)
    summary.json            final test metrics, steps, speed settings, wall time and images/s
    eval.json               `vaegan evaluate`; ablation.json: the numbers `vaegan ablate` measured
    samples/, recon/        per-epoch grids; figures/: the figure commands' PNGs; report.html
                            (report.md too in a `vaegan reproduce` folder)
    tensorboard/            the optional TensorBoard mirror
    wandb/                  wandb's local files of the run (train.log_to=[wandb]; an offline run is synced from here)
    trackers.json           the wandb and MLflow run ids the run logs to (train.log_to), kept for a resume
    .vaegan.lock            held by the process that trains the run; marks the folder as a vaegan run

vaegan deletes only files it wrote, in a folder that is a run, and never the current folder, one of its
parents or the home folder.
"""

from __future__ import annotations

import fnmatch
import json
import os
import shutil
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vaegan.errors import VaeganError
from vaegan.runs import checkpoint as ckpt
from vaegan.runs.files import atomic_write, remove_stale_temp_files, write_error, write_json
from vaegan.runs.metrics import MetricsLog, read_metrics

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None
    import msvcrt

LOCK = ".vaegan.lock"
# What vaegan writes in a run folder: top-level names, and per sub-folder the patterns of its files.
RUN_FILES = ("config.yaml", "metrics.jsonl", "model.pt", "summary.json", "eval.json", "ablation.json",
             "report.html", "trackers.json", LOCK)
RUN_FOLDERS = {"checkpoints": ("last.pt",), "samples": ("*.png",), "recon": ("*.png",), "figures": ("*.png",),
               "tensorboard": ("events.out.tfevents.*",)}
# Folders another program writes for the run, and the names of its entries there (folders included), each
# removed whole with the run: wandb's run folders (offline-run-*, run-*) and the links and logs beside them.
TOOL_FOLDERS = {"wandb": ("offline-run-*", "run-*", "latest-run", "debug.log", "debug-internal.log")}
TEMP_PATTERN = ".*.tmp"


@dataclass(frozen=True)
class RunStatus:
    """How far a run got: the step of its checkpoint and whether the final outputs belong to that step."""

    step: int | None  # of the checkpoint; None: no checkpoint yet
    summary_step: int | None  # None: no readable summary.json
    has_model: bool

    @property
    def complete(self) -> bool:
        """model.pt and summary.json were written for the checkpoint's step (a run killed after its final
        checkpoint and before them is not complete; resuming it completes them)."""
        return self.step is not None and self.summary_step == self.step and self.has_model

    def finished(self, steps: int) -> bool:
        """Trained for at least `steps` steps, with complete outputs."""
        return self.complete and self.step >= steps


class RunDir:
    def __init__(self, path: Path | str):
        self.path = Path(path)

    def __str__(self) -> str:
        return str(self.path)

    # ---- names ---------------------------------------------------------------------------------------

    @property
    def config(self) -> Path:
        return self.path / "config.yaml"

    @property
    def metrics_file(self) -> Path:
        return self.path / "metrics.jsonl"

    @property
    def checkpoint(self) -> Path:
        return self.path / "checkpoints" / "last.pt"

    @property
    def model(self) -> Path:
        return self.path / "model.pt"

    @property
    def summary(self) -> Path:
        return self.path / "summary.json"

    @property
    def eval(self) -> Path:
        return self.path / "eval.json"

    @property
    def ablation(self) -> Path:
        return self.path / "ablation.json"

    @property
    def report(self) -> Path:
        """`vaegan report`'s page; in a `vaegan reproduce` folder, the reproduction's page."""
        return self.path / "report.html"

    @property
    def report_markdown(self) -> Path:
        """The reproduction's report as markdown, beside its report.html (`vaegan reproduce`)."""
        return self.path / "report.md"

    @property
    def tensorboard(self) -> Path:
        return self.path / "tensorboard"

    @property
    def wandb(self) -> Path:
        """wandb's own files of the run (train.log_to=[wandb]: wandb.init(dir=RUN) writes them here)."""
        return self.path / "wandb"

    @property
    def trackers(self) -> Path:
        """The ids of the run's wandb and MLflow runs (train.log_to), so that a resume logs to the same ones."""
        return self.path / "trackers.json"

    @property
    def figures(self) -> Path:
        """The folder of the figure commands' PNGs (`vaegan sample`, `report`, ...)."""
        return self.path / "figures"

    def figure(self, name: str) -> Path:
        return self.figures / name

    def sample_grid(self, name: str) -> Path:
        """The sample grid written at an epoch end (`epoch_003`) or at the finish (`final`)."""
        return self.path / "samples" / f"{name}.png"

    def recon_grid(self, name: str) -> Path:
        return self.path / "recon" / f"{name}.png"

    def grid_folders(self) -> list[Path]:
        return [folder for folder in (self.path / "samples", self.path / "recon") if folder.is_dir()]

    # ---- reading and writing -------------------------------------------------------------------------

    def metrics_log(self) -> MetricsLog:
        return MetricsLog(self.metrics_file)

    def records(self) -> list[dict[str, Any]]:
        return read_metrics(self.metrics_file)

    def read_json(self, path: Path) -> dict[str, Any] | None:
        """A JSON file of the run: None when absent; one VaeganError when it cannot be read."""
        if not path.is_file():
            return None
        try:
            record = json.loads(path.read_bytes().decode("utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise VaeganError(f"{path} is corrupt or unreadable ({type(err).__name__}); `vaegan train --resume "
                              f"{self.path}` writes summary.json again, `vaegan evaluate` eval.json") from None
        if not isinstance(record, dict):
            raise VaeganError(f"{path} is corrupt: it holds no JSON object")
        return record

    def write_json(self, path: Path, record: dict[str, Any]) -> None:
        write_json(path, record)

    def write_text(self, path: Path, text: str) -> None:
        atomic_write(path, text)

    def _refuse_a_file(self) -> None:
        if self.path.exists() and not self.path.is_dir():
            raise VaeganError(f"{self.path} is a file, not a run folder")

    def require_checkpoint(self) -> None:
        """Refuse, before anything is written, a folder that holds no run to continue or open."""
        self._refuse_a_file()
        if not self.checkpoint.is_file():
            raise VaeganError(f"{self.path} holds no checkpoint ({self.checkpoint} is missing): the run has "
                              "not saved one yet, or the path is wrong")

    def read_checkpoint(self, required: tuple[str, ...] = ckpt.TRAINING_KEYS, map_location="cpu"
                        ) -> dict[str, Any]:
        self.require_checkpoint()
        return ckpt.read_checkpoint(self.checkpoint, map_location, required=required)

    def status(self) -> RunStatus:
        """The one answer to "is this run finished, at which step, and are its outputs complete?"."""
        return self.outputs_status(self.read_checkpoint()["step"] if self.checkpoint.is_file() else None)

    def outputs_status(self, step: int | None) -> RunStatus:
        """The status for a checkpoint at `step` that the caller has already read."""
        try:
            summary = self.read_json(self.summary)
        except VaeganError:
            summary = None  # a damaged summary is an incomplete output: resuming writes it again
        return RunStatus(step, summary.get("step") if summary else None, self.model.is_file())

    # ---- new runs, overwrites and the lock -----------------------------------------------------------

    def is_run(self) -> bool:
        return (self.path / LOCK).is_file() or self.checkpoint.is_file()

    def foreign_entries(self) -> list[str]:
        """Paths under the folder that vaegan did not write (relative, sorted)."""
        foreign = []
        for entry in sorted(self.path.iterdir()):
            name = entry.name
            if fnmatch.fnmatch(name, TEMP_PATTERN) or (name in RUN_FILES and entry.is_file()):
                continue
            if name not in (*RUN_FOLDERS, *TOOL_FOLDERS) or not entry.is_dir() or entry.is_symlink():
                foreign.append(name)
                continue
            foreign += [f"{name}/{child.name}" for child in sorted(entry.iterdir()) if not _written(name, child)]
        return foreign

    def check_new_run(self, overwrite: bool) -> None:
        """Refuse to start a run where it would replace or mix with files it must not touch."""
        self._refuse_a_file()
        if not self.path.is_dir() or not any(self.path.iterdir()):
            return
        foreign = self.foreign_entries()
        if foreign:
            shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
            raise VaeganError(f"{self.path} holds files vaegan did not write ({shown}); vaegan never deletes or "
                              "mixes with those: choose a new or empty --run-dir")
        if not self.is_run():
            names = ", ".join(sorted(p.name for p in self.path.iterdir()))
            raise VaeganError(f"{self.path} holds {names} but no vaegan run; vaegan will not overwrite them: "
                              "choose a new or empty --run-dir")
        if self.checkpoint.is_file() and not overwrite:
            raise VaeganError(f"{self.path} already holds a run; continue it with `vaegan train --resume "
                              f"{self.path}`, replace it with --overwrite, or choose another --run-dir")
        self._refuse_protected()

    def _refuse_protected(self) -> None:
        here, target = Path.cwd().resolve(), self.path.resolve()
        if target == here or target in here.parents or target == Path.home().resolve():
            raise VaeganError(f"refusing to replace the run in {self.path}: it is the current folder, a parent "
                              "of it, or the home folder; give the run a folder of its own")

    def remove_outputs(self) -> None:
        """Delete the files of the run (checked by `check_new_run` to be vaegan's own), keeping the lock."""
        try:
            for name in RUN_FILES:
                if name != LOCK:
                    (self.path / name).unlink(missing_ok=True)
            for folder in (*RUN_FOLDERS, *TOOL_FOLDERS):
                if (self.path / folder).is_dir():
                    for child in (self.path / folder).iterdir():
                        if not _written(folder, child):
                            continue
                        if child.is_dir() and not child.is_symlink():
                            shutil.rmtree(child)
                        else:
                            child.unlink()
                    (self.path / folder).rmdir()
        except OSError as err:
            raise write_error(self.path, err) from None

    @contextmanager
    def lock(self, purpose: str) -> Iterator[None]:
        """Hold the run's lock while a process writes it; a second process gets one line naming the holder.

        The lock is an OS file lock, so a killed holder releases it. Temporary files that killed writers left
        behind are removed once the lock is held.
        """
        self._refuse_a_file()
        lock_file = self.path / LOCK
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            fd = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as err:
            raise write_error(lock_file, err) from None
        try:
            if not _try_lock(fd):
                holder = lock_file.read_text(errors="replace").strip() or "another process"
                raise VaeganError(f"{self.path} is in use by {holder}; wait for it to finish or stop it (a run "
                                  "continues from its last checkpoint with `vaegan train --resume`)")
            try:
                os.ftruncate(fd, 0)
                os.write(fd, f"process {os.getpid()} on {socket.gethostname()} ({purpose}, since "
                             f"{time.strftime('%Y-%m-%d %H:%M:%S')})\n".encode())
            except OSError as err:
                raise write_error(lock_file, err) from None
            for folder in (self.path, *(self.path / name for name in RUN_FOLDERS)):
                remove_stale_temp_files(folder)
            yield
        finally:
            os.close(fd)  # closing releases the lock


def _written(folder: str, child: Path) -> bool:
    """Whether `child` of the run's sub-folder `folder` is one vaegan wrote (in a tool's folder: that tool)."""
    if folder in TOOL_FOLDERS:
        return any(fnmatch.fnmatch(child.name, p) for p in TOOL_FOLDERS[folder])
    return not child.is_dir() and any(fnmatch.fnmatch(child.name, p) for p in (*RUN_FOLDERS[folder], TEMP_PATTERN))


def _try_lock(fd: int) -> bool:
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        else:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
    except OSError:
        return False
    return True
