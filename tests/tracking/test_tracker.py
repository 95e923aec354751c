"""Which trackers a run opens (from rank 0 only), a missing package before anything starts, and a tracker that
fails on the way, which never costs the run."""

import logging
import sys
from types import SimpleNamespace

import pytest

from vaegan.config import TRACKERS as TRACKER_NAMES
from vaegan.errors import VaeganError
from vaegan.experiment import Experiment, train
from vaegan.runs import RunDir
from vaegan.tracking import TRACKERS, Trackers, open_trackers, tracker_names
from vaegan.training.distributed import Ranks


def test_every_tracker_train_log_to_names_has_an_implementation():
    assert list(TRACKERS) == list(TRACKER_NAMES)


def test_the_old_tensorboard_switch_still_means_tensorboard(tiny):
    assert tracker_names(tiny(**{"train.tensorboard": "true", "train.log_to": "[wandb,tensorboard]"})) == [
        "tensorboard", "wandb"]
    assert tracker_names(tiny(**{"train.tensorboard": "true"})) == ["tensorboard"]
    assert tracker_names(tiny()) == []


@pytest.mark.parametrize("tracker, module", [("tensorboard", "torch.utils.tensorboard"), ("wandb", "wandb"),
                                             ("mlflow", "mlflow.tracking")])
def test_a_missing_tracker_package_is_one_line_before_the_run_is_touched(tmp_path, tiny, monkeypatch, tracker,
                                                                         module):
    monkeypatch.setitem(sys.modules, module, None)  # as if it were not installed
    (tmp_path / "run").mkdir()
    with pytest.raises(VaeganError, match=rf"^logging to {tracker} needs .*: pip install 'vaegan\[{tracker}\]'"):
        train(tiny(**{"train.log_to": f"[{tracker}]"}), tmp_path / "run")
    assert not any((tmp_path / "run").iterdir())


def test_only_rank_0_opens_trackers(monkeypatch, tiny, tmp_path):
    opened = []
    monkeypatch.setattr("vaegan.experiment.open_trackers", lambda *args, **kwargs: opened.append(args) or Trackers([]))
    for rank in (1, 0):
        experiment = Experiment.__new__(Experiment)  # only what open_trackers reads: no model, no process group
        experiment.cfg, experiment.rundir = tiny(**{"train.log_to": "[wandb,mlflow]"}), RunDir(tmp_path)
        experiment.trainer = SimpleNamespace(ranks=Ranks(rank=rank, world_size=2), position=SimpleNamespace(step=0))
        experiment.trackers = Trackers([])
        experiment.open_trackers()
    assert len(opened) == 1  # rank 0's


def test_a_tracker_that_fails_is_dropped_with_one_warning_and_the_others_go_on(caplog):
    class Broken:
        name = "wandb"

        def scalars(self, *args):
            raise ConnectionError("the network went away\nmore lines")

    class Working:
        name = "mlflow"
        calls = 0

        def scalars(self, *args):
            Working.calls += 1

    trackers = Trackers([Broken(), Working()])
    with caplog.at_level(logging.WARNING, logger="vaegan"):
        for step in range(3):
            trackers.scalars("train", step, {"loss": 1.0})
    assert Working.calls == 3 and [t.name for t in trackers.live] == ["mlflow"]
    assert [(r.name, r.getMessage()) for r in caplog.records] == [(
        "vaegan.tracking.tracker",
        "wandb stopped logging (ConnectionError: the network went away); training goes on, metrics.jsonl has every "
        "value")]


def test_a_tracker_failing_during_a_run_costs_one_warning_and_the_run_finishes(tmp_path, tiny, monkeypatch, caplog):
    def full_disk(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("vaegan.tracking.tensorboard_log.TensorBoardLog.image", full_disk)
    with caplog.at_level(logging.WARNING, logger="vaegan"):
        summary = train(tiny(**{"train.log_to": "[tensorboard]"}), tmp_path / "run")
    assert summary["step"] == 2 and RunDir(tmp_path / "run").summary.is_file()
    assert [r.getMessage() for r in caplog.records if r.name.startswith("vaegan.tracking")] == [
        "tensorboard stopped logging (OSError: [Errno 28] No space left on device); training goes on, metrics.jsonl "
        "has every value"]


def test_a_tracker_that_cannot_start_is_one_line(tmp_path, tiny, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    with pytest.raises(VaeganError, match=r"^mlflow could not start a run \(.*\); set MLFLOW_TRACKING_URI") as err:
        train(tiny(**{"train.log_to": "[mlflow]"}), tmp_path / "run")
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("content", [b"\x00\xff garbage", b'{"mlflow": 5}', b"[1, 2]"])
def test_a_damaged_file_of_tracker_ids_is_one_line_saying_what_to_do(tmp_path, tiny, content):
    rundir = RunDir(tmp_path)
    rundir.trackers.write_bytes(content)
    with pytest.raises(VaeganError, match="trackers.json is corrupt: it should map tracker names to run ids; delete"):
        open_trackers(tiny(**{"train.log_to": "[mlflow]"}), rundir, first_step=1)
