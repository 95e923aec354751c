"""TensorBoard: scalars, grids, config and summary in RUN/tensorboard; a resumed leg replaces what a crashed one
wrote after the checkpoint, as metrics.jsonl does."""

import pytest

from vaegan.experiment import resume, train
from vaegan.runs import RunDir


def read_events(rundir: RunDir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(rundir.tensorboard))
    events.Reload()
    return events


def test_tensorboard_holds_the_scalars_grids_config_and_summary(tmp_path, tiny):
    rundir = RunDir(tmp_path / "run")
    train(tiny(**{"train.max_steps": 3, "train.tensorboard": True}), rundir.path)
    events = read_events(rundir)
    tags = events.Tags()
    assert {"train/loss", "train/mse_per_pixel", "test/mse_per_pixel"} <= set(tags["scalars"])
    assert [e.step for e in events.Scalars("train/loss")] == [1, 2, 3]
    assert [e.step for e in events.Scalars("test/mse_per_pixel")] == [0, 3]
    assert {"samples", "recon"} <= set(tags["images"])
    assert {"config/text_summary", "summary/text_summary"} <= set(tags["tensors"])


def test_a_resumed_leg_replaces_the_events_a_crashed_leg_wrote_after_the_checkpoint(tmp_path, tiny):
    from torch.utils.tensorboard import SummaryWriter

    rundir = RunDir(tmp_path / "run")
    train(tiny(**{"train.max_steps": 3, "train.log_to": "[tensorboard]"}), rundir.path)
    with SummaryWriter(str(rundir.tensorboard)) as crashed:  # a leg that got past step 3 and was killed
        crashed.add_scalar("train/loss", 999.0, 4)
    resume(rundir.path, {"train.max_steps": 5})
    logged = {r["step"]: r["loss"] for r in rundir.records() if r["kind"] == "train"}
    assert {e.step: e.value for e in read_events(rundir).Scalars("train/loss")} == pytest.approx(logged)
