"""vaegan evaluate and vaegan classifier train on tiny runs and a random-weight Inception file."""

import json

import numpy as np
import pytest
import torch

from vaegan.cli import main
from vaegan.config import Config, apply_overrides
from vaegan.evaluation.inception import FIDInceptionV3
from vaegan.evaluation.manifold import precision_recall
from vaegan.training.trainer import train

TINY = {"data.name": "shapes10", "model.channels": 8, "model.d_channels": 8, "model.latent_dim": 8,
        "model.embed_dim": 4, "train.batch_size": 16, "train.max_steps": 2, "train.eval_images": 32,
        "train.device": "cpu"}


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval")
    run = root / "cvaegan"
    train(apply_overrides(Config(), {**TINY, "model.name": "vaegan", "model.conditional": True}), run)
    classifier = root / "classifier.pt"
    assert main(["classifier", "train", "--dataset", "shapes10", "--out", str(classifier), "train.max_steps=30",
                 "model.channels=8", "train.device=cpu"]) == 0
    torch.manual_seed(0)
    weights = root / "inception.pth"
    torch.save(FIDInceptionV3().state_dict(), weights)  # random weights: the pipeline, not the numbers
    return run, classifier, weights


def test_classifier_file_records_its_test_accuracy(setup, capsys):
    _, classifier, _ = setup
    payload = torch.load(classifier, weights_only=True)
    assert payload["format"] == "vaegan-classifier" and 0.0 <= payload["test_accuracy"] <= 1.0
    assert payload["dataset"] == "shapes10" and payload["num_classes"] == 10


def test_evaluate_writes_every_metric_with_its_protocol(setup, tmp_path, monkeypatch):
    run, classifier, weights = setup
    monkeypatch.setenv("VAEGAN_CACHE", str(tmp_path / "cache"))
    assert main(["evaluate", str(run), "--n", "40", "--classifier", str(classifier), "--inception-weights",
                 str(weights), "--device", "cpu"]) == 0
    record = json.loads((run / "eval.json").read_text())
    assert set(record["metrics"]) == {"fid", "kid", "is", "fcd", "cc", "pr", "recon", "latent"}
    assert record["skipped"] == {}
    fid = record["metrics"]["fid"]
    assert fid["value"] >= 0 and fid["protocol"]["n_fake"] == 40 and fid["protocol"]["n_real"] == 40
    assert len(fid["protocol"]["weights_sha256"]) == 64 and fid["protocol"]["generator"] == "raw"
    fcd = record["metrics"]["fcd"]
    assert fcd["real_vs_real_floor"] >= 0 and "intra_class" in fcd
    assert 0 <= record["metrics"]["cc"]["value"] <= 1
    recon = record["metrics"]["recon"]
    assert recon["mse_per_pixel_01"] == pytest.approx(recon["mse_per_pixel"] / 4) and recon["psnr"] > 0
    cached = sorted(p.name for p in (tmp_path / "cache" / "features").iterdir())
    assert len(cached) == 3  # inception test, classifier test, classifier train: reused next time
    assert main(["evaluate", str(run), "--n", "40", "--classifier", str(classifier), "--inception-weights",
                 str(weights), "--device", "cpu", "--metrics", "fid,fcd"]) == 0
    assert json.loads((run / "eval.json").read_text())["metrics"]["fid"]["value"] == pytest.approx(fid["value"])


def test_without_inception_weights_or_classifier_the_other_metrics_still_run(setup, tmp_path, monkeypatch, capsys):
    run, _, _ = setup
    monkeypatch.setenv("VAEGAN_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("VAEGAN_INCEPTION", raising=False)
    monkeypatch.setattr("vaegan.evaluation.inception.urllib.request.urlretrieve",
                        lambda *a: (_ for _ in ()).throw(OSError("offline")))
    assert main(["evaluate", str(run), "--n", "30", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "fid: skipped:" in out and "VAEGAN_INCEPTION" in out and "vaegan classifier train" in out
    record = json.loads((run / "eval.json").read_text())
    assert {"recon", "latent"} == set(record["metrics"])


def test_unknown_metric_is_one_clear_error(setup, capsys):
    assert main(["evaluate", str(setup[0]), "--metrics", "fid,sharpness", "--device", "cpu"]) == 2
    assert "sharpness" in capsys.readouterr().err


def test_precision_and_recall_on_known_sets():
    rng = np.random.default_rng(0)
    real = rng.normal(size=(200, 2))
    assert precision_recall(real, real[:100] + 1e-6, k=3)[0] == 1.0  # fakes on real points are inside
    far = real + 100.0
    assert precision_recall(real, far, k=3) == (0.0, 0.0)
    collapsed = np.zeros((50, 2))  # every fake at one point: precise, but covering almost none of the reals
    precision, recall = precision_recall(real, collapsed, k=3)
    assert precision == 1.0 and recall < 0.1
