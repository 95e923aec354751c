"""train.log_to: wandb (offline) and MLflow (a local file store) get what metrics.jsonl holds, and a resume
continues the same tracker runs; only rank 0 logs; a failing or missing tracker never costs a run."""

import json
import logging
import struct
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from vaegan.config import Config, apply_overrides, from_dict
from vaegan.errors import VaeganError
from vaegan.cli import main
from vaegan.experiment import Experiment, train
from vaegan.runs import RunDir
from vaegan.tracking import Trackers, tracker_names
from vaegan.training.distributed import Ranks

RECORD_KEYS = {"kind", "step", "epoch", "time"}


@pytest.fixture
def offline(tmp_path, monkeypatch):
    """wandb offline in tmp_path/wandb, MLflow in a file store at tmp_path/mlruns: nothing leaves the machine."""
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", (tmp_path / "mlruns").as_uri())
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    return tmp_path


def wandb_history(wandb_dir: Path) -> dict[str, list[dict]]:
    """run id -> the history rows of its offline .wandb files, read as wandb writes them: a LevelDB-style log of
    protobuf Records (a 7-byte file header, then 32 KiB blocks of chunks with 7-byte headers)."""
    from wandb.proto import wandb_internal_pb2

    block = 32768
    rows: dict[str, list[dict]] = {}
    for path in sorted(wandb_dir.glob("offline-run-*/run-*.wandb")):
        data = path.read_bytes()
        assert data[:4] == b":W&B"
        position, pending = 7, b""
        while position + 7 <= len(data):
            left = block - position % block
            _, length, kind = struct.unpack("<IHB", data[position:position + 7])
            if left < 7 or (kind == 0 and length == 0):  # the padding at a block's end
                position += left
                continue
            chunk, position = data[position + 7:position + 7 + length], position + 7 + length
            pending = chunk if kind in (1, 2) else pending + chunk  # full / first, middle / last
            if kind in (1, 4):
                record = wandb_internal_pb2.Record()
                record.ParseFromString(pending)
                if record.WhichOneof("record_type") == "history":
                    run_id = path.stem.removeprefix("run-")
                    rows.setdefault(run_id, []).append(
                        {item.key or "/".join(item.nested_key): json.loads(item.value_json)
                         for item in record.history.item})
    return rows


def logged(records: list[dict], kind: str) -> dict[int, dict[str, float]]:
    """step -> the numbers metrics.jsonl holds for `kind` at that step (the last record of a step)."""
    return {r["step"]: {f"{kind}/{k}": v for k, v in r.items()
                        if k not in RECORD_KEYS and isinstance(v, (int, float)) and not isinstance(v, bool)}
            for r in records if r["kind"] == kind}


@pytest.mark.parametrize("text, expected", [
    ("[wandb,mlflow]", ["wandb", "mlflow"]), ("wandb", ["wandb"]), ("[]", []), ("[ mlflow , mlflow ]", ["mlflow"]),
])
def test_log_to_takes_a_list_of_trackers(text, expected):
    assert apply_overrides(Config(), {"train.log_to": text}).train.log_to == expected


def test_an_unknown_tracker_is_one_error_naming_the_key_and_the_choices():
    with pytest.raises(VaeganError, match=r"'train.log_to': 'comet'; allowed: a list of tensorboard, wandb, mlflow"):
        apply_overrides(Config(), {"train.log_to": "[wandb,comet]"})
    with pytest.raises(VaeganError, match="train.log_to"):
        apply_overrides(Config(), {"train.log_to": 3})
    assert from_dict({"train": {"log_to": ["mlflow"]}}, where="a preset").train.log_to == ["mlflow"]


def test_the_old_tensorboard_switch_still_means_tensorboard():
    cfg = apply_overrides(Config(), {"train.tensorboard": "true", "train.log_to": "[wandb,tensorboard]"})
    assert tracker_names(cfg) == ["tensorboard", "wandb"]


def test_wandb_and_mlflow_get_what_metrics_jsonl_holds_and_a_resume_continues_their_runs(offline, tiny_args):
    from mlflow.tracking import MlflowClient

    run_dir = offline / "run"
    assert main(["train", "--preset", "cvaegan-cifar100", "--run-dir", str(run_dir), *tiny_args, "train.max_steps=3",
                 "train.log_to=[wandb,mlflow]"]) == 0
    ids = json.loads(RunDir(run_dir).trackers.read_text())
    first_leg = RunDir(run_dir).records()
    assert main(["train", "--resume", str(run_dir), "train.max_steps=5"]) == 0
    assert json.loads(RunDir(run_dir).trackers.read_text()) == ids  # the same tracker runs, continued
    # what metrics.jsonl held at the end of each leg (a resume drops the first leg's final test record, written
    # after its last checkpoint; the trackers keep it)
    expected: dict[int, dict] = {}
    for records in (first_leg, RunDir(run_dir).records()):
        for kind in ("train", "test"):
            for step, values in logged(records, kind).items():
                expected.setdefault(step, {}).update(values)
    assert sorted(expected) == [0, 1, 2, 3, 4, 5]

    history = wandb_history(offline / "wandb")
    assert list(history) == [ids["wandb"]]  # both legs logged to the one run id
    sent: dict[int, dict] = {}
    for row in history[ids["wandb"]]:
        sent.setdefault(row["_step"], {}).update({k: v for k, v in row.items() if "/" in k})
    assert {step: {k: v for k, v in values.items() if not k.startswith(("samples", "recon"))}
            for step, values in sent.items()} == expected

    client = MlflowClient()
    run = client.get_run(ids["mlflow"])
    assert run.info.status == "FINISHED" and run.data.params["train.max_steps"] == "3"
    for key in {k for values in expected.values() for k in values}:
        history = {m.step: m.value for m in client.get_metric_history(ids["mlflow"], key)}
        assert history == pytest.approx({step: values[key] for step, values in expected.items() if key in values})
    artifacts = {a.path for a in client.list_artifacts(ids["mlflow"])}
    assert "vaegan_summary.json" in artifacts and "grids" in artifacts


@pytest.mark.parametrize("tracker, module", [("wandb", "wandb"), ("mlflow", "mlflow.tracking")])
def test_a_missing_tracker_package_is_one_line_before_the_run_is_touched(tmp_path, tiny, monkeypatch, tracker,
                                                                         module):
    monkeypatch.setitem(sys.modules, module, None)  # as if it were not installed
    (tmp_path / "run").mkdir()
    with pytest.raises(VaeganError, match=rf"pip install 'vaegan\[{tracker}\]'"):
        train(tiny(**{"train.log_to": f"[{tracker}]"}), tmp_path / "run")
    assert not any((tmp_path / "run").iterdir())


def test_only_rank_0_opens_trackers(monkeypatch, tiny):
    def refuse(*args, **kwargs):
        raise AssertionError("a rank other than 0 opened a tracker")

    monkeypatch.setattr("vaegan.experiment.open_trackers", refuse)
    experiment = Experiment.__new__(Experiment)
    experiment.cfg, experiment.trackers_opened = tiny(**{"train.log_to": "[wandb]"}), False
    experiment.trainer = SimpleNamespace(ranks=Ranks(rank=1, world_size=2), position=SimpleNamespace(step=0))
    experiment.open_trackers()
    assert not experiment.trackers_opened


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
    assert [r.getMessage() for r in caplog.records] == [
        "wandb stopped logging (ConnectionError: the network went away); training goes on, metrics.jsonl has every "
        "value"]
