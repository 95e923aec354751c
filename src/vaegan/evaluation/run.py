"""A run opened for figures and metrics: its config, its model (with the EMA generator when it has one), data."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from vaegan.config import Config, from_dict
from vaegan.data import ImageDataset, load_split
from vaegan.errors import VaeganError
from vaegan.models import GenerativeModel, build_model
from vaegan.runs import RunDir
from vaegan.runs.checkpoint import is_count, state_must_fit
from vaegan.runs.device import select_device
from vaegan.speed import apply_speed_settings, inference_settings

MAX_CLASSES = 100_000  # far above any dataset vaegan reads; a larger count is a damaged or foreign record


@dataclass
class LoadedRun:
    rundir: RunDir
    cfg: Config
    model: GenerativeModel  # in eval mode, on `device`; its generator is the EMA copy when the run keeps one
    device: torch.device
    step: int
    uses_ema: bool
    raw_model: GenerativeModel | None = None  # with the trained (not EMA) generator, where the run keeps an EMA
    _datasets: dict[str, ImageDataset] = field(default_factory=dict, repr=False)

    def dataset(self, split: str) -> ImageDataset:
        if split not in self._datasets:
            self._datasets[split] = load_split(self.cfg.data, split, self.cfg.train.seed)
        return self._datasets[split]

    def with_generator(self, ema: bool) -> GenerativeModel:
        """The model with the EMA generator (`ema`, where the run keeps one) or the trained one."""
        return self.model if ema or self.raw_model is None else self.raw_model

    @property
    def class_names(self) -> list[str]:
        return self.dataset("test").class_names

    @property
    def run_dir(self) -> Path:
        return self.rundir.path


def load_run(run_dir: Path, device: str = "auto") -> LoadedRun:
    """Open `run_dir` from its checkpoint; every problem is one VaeganError. Opening changes no process-wide
    setting: the model only gets the device's memory layout."""
    rundir = RunDir(run_dir)
    payload = rundir.read_checkpoint(required=("config", "step", "model", "num_classes"))
    cfg = from_dict(payload["config"], where=f"config stored in {rundir.checkpoint}")
    _check_records(payload, rundir.checkpoint)
    model = build_model(cfg.model, payload["num_classes"])
    raw = None
    with state_must_fit(rundir.path):
        model.load_state_dict(payload["model"])
        if payload.get("ema") is not None:
            shadow = copy.deepcopy(model.decoder)
            shadow.load_state_dict(payload["ema"]["shadow"])
            model, raw = model.with_decoder(shadow), model
    target = select_device(device)
    model, raw = (None if m is None else apply_speed_settings(m, inference_settings(target)).to(target).eval()
                  for m in (model, raw))
    return LoadedRun(rundir, cfg, model, target, payload["step"], uses_ema=raw is not None, raw_model=raw)


def _check_records(payload: dict[str, Any], path: Path) -> None:
    """The fields a model is built from, checked before anything is built (see is_count)."""
    for key, top in (("num_classes", MAX_CLASSES), ("step", 2**62)):
        value = payload[key]
        if not is_count(value, 0, top):
            raise VaeganError(f"{path} is not a usable checkpoint: its {key} is {value!r}, not an integer in "
                              f"0..{top}")
    ema = payload.get("ema")
    if ema is not None and not (isinstance(ema, dict) and isinstance(ema.get("shadow"), dict)):
        raise VaeganError(f"{path} is not a usable checkpoint: its ema record holds no shadow weights")
    if not isinstance(payload["model"], dict):
        raise VaeganError(f"{path} is not a usable checkpoint: its model record is not a set of named weights")


TAIL_STEPS = 100


def metrics_summary(run_dir: Path) -> dict[str, Any]:
    """The numbers a report shows: summary.json (final test metrics, speed, hardware) when the run finished, the
    last test record otherwise, the mean of each logged train value over the last 100 steps, and the metrics of
    eval.json (`vaegan evaluate`) when it exists."""
    rundir = RunDir(run_dir)
    summary = rundir.read_json(rundir.summary) or {}
    evaluation = (rundir.read_json(rundir.eval) or {}).get("metrics") or {}
    records = rundir.records()
    train = [r for r in records if r.get("kind") == "train"]
    tests = [r for r in records if r.get("kind") == "test"]
    tail: dict[str, float] = {}
    for key in sorted({k for r in train[-TAIL_STEPS:] for k in r} - {"kind", "step", "epoch", "time", "skipped"}):
        values = [r[key] for r in train[-TAIL_STEPS:] if isinstance(r.get(key), (int, float))]
        if values:
            tail[key] = sum(values) / len(values)
    return {"summary": summary, "test": summary.get("test") or (tests[-1] if tests else {}),
            "train_tail": tail, "steps": train[-1]["step"] if train else 0, "evaluation": evaluation}
