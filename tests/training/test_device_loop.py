"""The loop a GPU can run at full speed, proven on the CPU: no host sync between flushes, the same records
whatever `train.log_every`, and a stop after non-finite steps in a row (speed settings through whole runs:
tests/speed/test_training_speed.py)."""

import pytest
import torch

from vaegan.data import load_dataset
from vaegan.experiment import train
from vaegan.runs import RunDir
from vaegan.runs.metrics import read_metrics
from vaegan.training import Trainer
from vaegan.training import step as step_module
from vaegan.training import trainer as trainer_module

SYNCS = ("item", "__bool__", "cpu", "tolist")


@pytest.fixture(scope="module")
def shapes():
    return load_dataset("shapes10", "train"), load_dataset("shapes10", "test")


@pytest.mark.parametrize("model", ["vae", "vaegan"])
def test_the_loop_calls_no_host_sync_between_flushes(tmp_path, shapes, tiny, monkeypatch, model, device):
    cfg = tiny(**{"train.device": device, "model.name": model, "model.conditional": True, "model.dropout": 0.3, "train.ema_decay": 0.9,
                  "train.max_steps": 12, "train.log_every": 4, "train.ckpt_every": 1000, "data.hflip": True,
                  "data.crop_padding": 2})
    for probe in (step_module.non_finite_check_works, step_module.found_inf_skip_works):
        probe.cache_clear()  # as in a fresh process: the protocol probes must run before the loop, not in it
    trainer = Trainer(cfg, RunDir(tmp_path / "run"), shapes[0])
    assert len(trainer.loader) > 12  # no epoch end (and its evaluation) inside the window
    calls, flushing = [], []
    real_flush = trainer_module.Trainer.flush

    def flush(self, *args):
        flushing.append(True)
        try:
            return real_flush(self, *args)
        finally:
            flushing.pop()
    monkeypatch.setattr(trainer_module.Trainer, "flush", flush)
    for name in SYNCS:
        real = getattr(torch.Tensor, name)

        def counting(self, *args, _real=real, _name=name, **kwargs):
            if not flushing:
                calls.append((_name, trainer.position.step))
            return _real(self, *args, **kwargs)
        monkeypatch.setattr(torch.Tensor, name, counting)
    trainer.fit()
    monkeypatch.undo()
    assert calls == []  # (sync name, step) of every call made outside a flush
    steps = [r["step"] for r in read_metrics(tmp_path / "run" / "metrics.jsonl")]
    assert steps == list(range(1, 13))


def test_log_every_writes_the_same_records_as_every_step(tmp_path, tiny):
    def records(log_every):
        run = tmp_path / f"every{log_every}"
        train(tiny(**{"model.name": "vaegan", "model.conditional": True, "train.max_steps": 7,
                      "train.log_every": log_every, "train.ckpt_every": 3}), run)
        return [{k: v for k, v in r.items() if k != "time"} for r in read_metrics(run / "metrics.jsonl")]
    assert records(1) == records(5)


def test_non_finite_gradients_in_a_row_stop_at_a_flush_and_keep_the_last_good_checkpoint(tmp_path, shapes, tiny):
    from vaegan.errors import VaeganError
    from vaegan.runs import checkpoint as ckpt

    cfg = tiny(**{"train.max_steps": 30, "train.ckpt_every": 2, "train.log_every": 3, "train.max_nonfinite": 4})
    trainer = Trainer(cfg, RunDir(tmp_path / "run"), shapes[0])
    weight = trainer.model.decoder.project.weight
    weight.register_hook(lambda grad: grad * float("nan") if trainer.position.step >= 4 else grad)  # steps 5..
    with pytest.raises(VaeganError, match=r"4 non-finite losses or gradients in a row \(steps 5-8\).*step 4\)"):
        trainer.fit()
    payload = ckpt.read_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")
    assert payload["step"] == 4 and payload["nonfinite_steps"] == 0
    records = read_metrics(tmp_path / "run" / "metrics.jsonl")
    assert [r["skipped"] for r in records] == [False] * 4 + [True] * 4  # every step up to the stop has its record
    assert all(torch.isfinite(v).all() for v in payload["model"].values() if v.is_floating_point())

