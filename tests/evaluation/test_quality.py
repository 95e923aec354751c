"""Sample quality at each epoch end (evaluation.quality_classifier): records, summary, curves, mistakes."""

import json
import math

import pytest

from vaegan.cli import main
from vaegan.config import Config, apply_overrides
from vaegan.experiment import train
from vaegan.runs.metrics import read_metrics

RUN = {"data.name": "shapes10", "data.train_subset": 64, "model.name": "vaegan", "model.conditional": True,
       "model.channels": 8, "model.d_channels": 8, "model.latent_dim": 8, "model.embed_dim": 4,
       "train.batch_size": 16, "train.epochs": 3, "train.epoch_work_steps": 4, "train.eval_images": 32,
       "train.device": "cpu", "evaluation.quality_samples": 40}


def records(run_dir, kind: str) -> list[dict]:
    return [r for r in read_metrics(run_dir / "metrics.jsonl") if r["kind"] == kind]


@pytest.fixture(scope="module")
def quality_runs(tmp_path_factory, classifier_file):
    """Two runs scored at each epoch end, and the first one's twin without the probe."""
    root = tmp_path_factory.mktemp("quality")
    scorer = classifier_file(root / "scorer.pt", 3)
    for name, overrides in (("a", {"evaluation.quality_classifier": scorer}),
                            ("b", {"evaluation.quality_classifier": scorer, "model.class_norm": True}),
                            ("plain", {})):
        train(apply_overrides(Config(), {**RUN, **overrides}), root / name)
    return root


def test_each_epoch_end_logs_fcd_and_class_consistency_with_images_and_seconds(quality_runs):
    quality = records(quality_runs / "a", "quality")
    assert [r["epoch"] for r in quality] == [1, 2, 3]
    assert [r["images"] for r in quality] == [64, 128, 192]
    assert 0 < quality[0]["seconds"] < quality[1]["seconds"] < quality[2]["seconds"]
    assert all(math.isfinite(r["fcd"]) and r["fcd"] >= 0 and 0 <= r["cc"] <= 1 for r in quality)
    summary = json.loads((quality_runs / "a" / "summary.json").read_text())
    assert summary["quality"] == {k: v for k, v in quality[-1].items() if k not in ("kind", "step", "epoch", "time")}


def test_the_probe_changes_nothing_the_run_trains(quality_runs):
    strip = lambda rs: [{k: v for k, v in r.items() if k != "time"} for r in rs]  # noqa: E731
    assert strip(records(quality_runs / "a", "train")) == strip(records(quality_runs / "plain", "train"))
    assert strip(records(quality_runs / "a", "test")) == strip(records(quality_runs / "plain", "test"))
    assert records(quality_runs / "plain", "quality") == []


def test_curves_put_several_runs_quality_on_one_picture(quality_runs, tmp_path, capsys):
    main(["curves", str(quality_runs / "a"), str(quality_runs / "b"), "--out", str(tmp_path / "both.png")])
    assert (tmp_path / "both.png").stat().st_size > 0
    main(["curves", str(quality_runs / "a"), "--out", str(tmp_path / "a.png")])
    assert (tmp_path / "a.png").is_file() and (tmp_path / "a-quality.png").is_file()
    assert main(["curves", str(quality_runs / "a"), str(quality_runs / "b")]) != 0
    assert "say where with --out PNG" in capsys.readouterr().err
    assert main(["curves", str(quality_runs / "a"), str(quality_runs / "plain"), "--out", str(tmp_path / "x.png")]) != 0
    assert "no quality records in" in capsys.readouterr().err


def test_a_missing_or_foreign_scorer_is_refused_before_training(tmp_path, classifier_file, capsys):
    for scorer, message in ((str(tmp_path / "none.pt"), "none.pt"),
                            (str(tmp_path / "not-a-checkpoint.pt"), "not-a-checkpoint.pt")):
        (tmp_path / "not-a-checkpoint.pt").write_bytes(b"\x00" * 64)
        assert main(["train", "--preset", "cvaegan-cifar100", "--run-dir", str(tmp_path / "run"),
                     *(f"{k}={v}" for k, v in {**RUN, "evaluation.quality_classifier": scorer}.items())]) != 0
        err = capsys.readouterr().err
        assert err.startswith("vaegan: error:") and message in err and "Traceback" not in err
        assert not (tmp_path / "run" / "metrics.jsonl").exists()
