"""A run opened for figures and metrics: its config, its model (with the EMA generator when it has one), data."""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from vaegan.config import Config, from_dict
from vaegan.data import ImageDataset, load_dataset
from vaegan.models import GenerativeModel, build_model
from vaegan.training.checkpoint import load_checkpoint, state_must_fit
from vaegan.training.device import select_device
from vaegan.training.metrics import read_metrics
from vaegan.training.performance import apply_speed_settings, configure_process, speed_defaults


@dataclass
class LoadedRun:
    run_dir: Path
    cfg: Config
    model: GenerativeModel  # in eval mode, on `device`; its generator is the EMA copy when the run keeps one
    device: torch.device
    step: int
    uses_ema: bool
    _datasets: dict[str, ImageDataset] = field(default_factory=dict, repr=False)

    def dataset(self, split: str) -> ImageDataset:
        if split not in self._datasets:
            self._datasets[split] = load_dataset(self.cfg.data.name, split, self.cfg.data.dir,
                                                 download=self.cfg.data.download)
        return self._datasets[split]

    @property
    def class_names(self) -> list[str]:
        return self.dataset("test").class_names


def load_run(run_dir: Path, device: str = "auto") -> LoadedRun:
    """Open `run_dir` from its `checkpoints/last.pt`; every problem is one VaeganError."""
    run_dir = Path(run_dir)
    payload = load_checkpoint(run_dir / "checkpoints" / "last.pt")
    cfg = from_dict(payload["config"], where=f"config stored in {run_dir}/checkpoints/last.pt")
    state = payload["model"]
    embedding = state.get("decoder.label.embedding.weight")
    model = build_model(cfg.model, 0 if embedding is None else embedding.shape[0])
    with state_must_fit(run_dir):
        model.load_state_dict(state)
        if payload.get("ema") is not None:
            shadow = copy.deepcopy(model.decoder)
            shadow.load_state_dict(payload["ema"]["shadow"])
            model = model.with_decoder(shadow)
    target = select_device(device)
    speed = speed_defaults(target)  # the training defaults speed up inference too (~1.7x on CPU)
    configure_process(speed)
    model = apply_speed_settings(model, speed).to(target).eval()
    return LoadedRun(run_dir, cfg, model, target, payload["step"], uses_ema=payload.get("ema") is not None)


TAIL_STEPS = 100


def metrics_summary(run_dir: Path) -> dict[str, Any]:
    """The numbers a report shows: summary.json (final test metrics, speed, hardware) when the run finished, the
    last test record otherwise, the mean of each logged train value over the last 100 steps, and the metrics of
    eval.json (`vaegan evaluate`) when it exists."""
    run_dir = Path(run_dir)
    summary_file, eval_file = run_dir / "summary.json", run_dir / "eval.json"
    summary = json.loads(summary_file.read_text()) if summary_file.is_file() else {}
    evaluation = json.loads(eval_file.read_text())["metrics"] if eval_file.is_file() else {}
    records = read_metrics(run_dir / "metrics.jsonl") if (run_dir / "metrics.jsonl").is_file() else []
    train = [r for r in records if r.get("kind") == "train"]
    tests = [r for r in records if r.get("kind") == "test"]
    tail: dict[str, float] = {}
    for key in sorted({k for r in train[-TAIL_STEPS:] for k in r} - {"kind", "step", "epoch", "time", "skipped"}):
        values = [r[key] for r in train[-TAIL_STEPS:] if isinstance(r.get(key), (int, float))]
        if values:
            tail[key] = sum(values) / len(values)
    return {"summary": summary, "test": summary.get("test") or (tests[-1] if tests else {}),
            "train_tail": tail, "steps": train[-1]["step"] if train else 0, "evaluation": evaluation}
