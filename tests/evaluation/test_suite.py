"""vaegan evaluate and vaegan classifier train on tiny runs and a random-weight Inception file."""

import json

import numpy as np
import pytest
import torch

from vaegan.cli import main
from vaegan.data import load_dataset
from vaegan.evaluation import features as feat
from vaegan.evaluation.inception import FIDInceptionV3
from vaegan.evaluation.manifold import precision_recall
from vaegan.evaluation.suite import class_consistency
from vaegan.objectives.feature_networks import load_classifier

@pytest.fixture(scope="module")
def setup(tmp_path_factory, tiny_run):
    root = tmp_path_factory.mktemp("eval")
    run = tiny_run("cvaegan", {"model.name": "vaegan", "model.conditional": True})
    classifier = root / "classifier.pt"
    assert main(["classifier", "train", "--dataset", "shapes10", "--out", str(classifier), "train.max_steps=120",
                 "model.channels=16", "train.device=cpu"]) == 0
    torch.manual_seed(0)
    weights = root / "inception.pth"
    torch.save(FIDInceptionV3().state_dict(), weights)  # random weights: the pipeline, not the numbers
    return run, classifier, weights


def test_a_short_classifier_training_is_clearly_above_chance_and_records_it(setup):
    _, classifier, _ = setup
    assert torch.load(classifier, weights_only=True)["format"] == "vaegan-classifier"
    _, info = load_classifier(classifier, torch.device("cpu"))
    assert info["test_accuracy"] > 0.8  # chance: 0.1
    assert info["dataset"] == "shapes10" and info["num_classes"] == 10


def test_class_consistency_is_high_for_true_labels_and_chance_for_shuffled_ones(setup):
    _, classifier, _ = setup
    network, _ = load_classifier(classifier, torch.device("cpu"))
    test = load_dataset("shapes10", "test")
    predicted = feat.extract(feat.real_batches(test, torch.device("cpu")),
                             lambda images: {"predicted": network(images).argmax(1)})
    assert class_consistency(predicted["predicted"], predicted["labels"]) > 0.8
    shuffled = np.random.default_rng(0).permutation(predicted["labels"])
    assert abs(class_consistency(predicted["predicted"], shuffled) - 0.1) < 0.03


def test_evaluate_writes_every_metric_with_its_protocol(setup, tmp_path, monkeypatch):
    run, classifier, weights = setup
    monkeypatch.setenv("VAEGAN_CACHE", str(tmp_path / "cache"))
    assert main(["evaluate", str(run), "--n", "24", "--classifier", str(classifier), "--inception-weights",
                 str(weights), "--device", "cpu"]) == 0
    record = json.loads((run / "eval.json").read_text())
    assert set(record["metrics"]) == {"fid", "kid", "is", "fcd", "cc", "pr", "div", "recon", "latent", "sharp",
                                      "smooth"}
    assert record["skipped"] == {}
    sharp, smooth, div = (record["metrics"][name] for name in ("sharp", "smooth", "div"))
    assert sharp["ratio"] == pytest.approx(sharp["samples"] / sharp["real"]) and sharp["reconstruction_ratio"] > 0
    assert 1 <= smooth["mean_step_ratio"] <= smooth["max_step_ratio"] <= 9 and smooth["protocol"]["pairs"] == 12
    assert div["value"] > 0 and div["lowest_class"] <= div["value"] and "measure" in div["protocol"]
    fid = record["metrics"]["fid"]
    assert fid["value"] >= 0 and fid["protocol"]["n_fake"] == 24 and fid["protocol"]["n_real"] == 24
    assert len(fid["protocol"]["weights_sha256"]) == 64 and fid["protocol"]["generator"] == "raw"
    fcd = record["metrics"]["fcd"]
    assert fcd["real_vs_real_floor"] >= 0 and "intra_class" in fcd
    assert 0 <= record["metrics"]["cc"]["value"] <= 1
    recon = record["metrics"]["recon"]
    assert recon["mse_per_pixel_01"] == pytest.approx(recon["mse_per_pixel"] / 4) and recon["psnr"] > 0
    def cached():
        return {p.name: p.stat().st_mtime_ns for p in (tmp_path / "cache" / "features").iterdir()}
    first = cached()
    assert len(first) == 3  # inception test, classifier test/train
    assert main(["evaluate", str(run), "--n", "24", "--classifier", str(classifier), "--inception-weights",
                 str(weights), "--device", "cpu", "--metrics", "fid,fcd"]) == 0
    assert cached() == first  # the second call reuses all three, rewriting none
    assert json.loads((run / "eval.json").read_text())["metrics"]["fid"]["value"] == pytest.approx(fid["value"])
    changed = tmp_path / "changed.pth"  # another extractor: new weights, new hash, new reference features
    state = torch.load(weights, weights_only=True)
    state["fc.bias"] += 1.0
    torch.save(state, changed)
    assert main(["evaluate", str(run), "--n", "24", "--inception-weights", str(changed), "--device", "cpu",
                 "--metrics", "fid"]) == 0
    after = cached()
    assert len(after) == 4 and all(after[name] == stamp for name, stamp in first.items())


def test_a_truncated_feature_cache_is_computed_again(tmp_path):
    calls = []

    def compute():
        calls.append(1)
        return {"features": np.arange(12, dtype=np.float32).reshape(3, 4)}
    first = feat.cached_features(tmp_path, "key", compute)
    path = feat.feature_cache_path(tmp_path, "key")
    path.write_bytes(path.read_bytes()[:40])
    again = feat.cached_features(tmp_path, "key", compute)
    assert len(calls) == 2 and np.array_equal(first["features"], again["features"])
    assert np.array_equal(feat.cached_features(tmp_path, "key", compute)["features"], first["features"])
    assert len(calls) == 2  # the rewritten file is whole again


def test_without_inception_weights_or_classifier_the_other_metrics_still_run(setup, tmp_path, monkeypatch, capsys):
    run, _, _ = setup
    monkeypatch.setenv("VAEGAN_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("VAEGAN_INCEPTION", raising=False)
    monkeypatch.setattr("vaegan.runs.weights.stream_url", lambda *a: (_ for _ in ()).throw(OSError("offline")))
    assert main(["evaluate", str(run), "--n", "30", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "fid, kid, is: skipped:" in out and out.count("VAEGAN_INCEPTION") == 1
    assert "fcd, cc, pr, div: skipped:" in out and "vaegan classifier train" in out
    record = json.loads((run / "eval.json").read_text())
    assert {"recon", "latent", "sharp", "smooth"} == set(record["metrics"])


def test_a_missing_classifier_file_is_named_as_such(setup, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("VAEGAN_CACHE", str(tmp_path / "cache"))
    assert main(["evaluate", str(setup[0]), "--metrics", "fcd", "--classifier", str(tmp_path / "none.pt"),
                 "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert f"no classifier file at {tmp_path / 'none.pt'}" in out and "has not saved one" not in out


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


@pytest.mark.parametrize("precision", ["fp32", "tf32", "bf16"])
def test_inception_precision_is_scoped_to_the_extraction(precision):
    from vaegan.evaluation.suite import inception_precision

    before = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    layer = torch.nn.Linear(4, 4)
    with inception_precision(precision, torch.device("cpu")):
        assert torch.backends.cuda.matmul.allow_tf32 == (precision == "tf32")
        dtype = layer(torch.ones(2, 4)).dtype
    assert dtype == (torch.bfloat16 if precision == "bf16" else torch.float32)
    assert (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32) == before


def test_diversity_is_near_one_for_samples_like_the_real_images_and_zero_for_a_collapse():
    from vaegan.evaluation.suite import Evaluation

    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), 40)
    real = {"features": rng.normal(size=(120, 8)), "labels": labels}
    alike = {"features": rng.normal(size=(120, 8)), "labels": labels}
    collapsed = {"features": np.repeat(rng.normal(size=(3, 8)), 40, axis=0), "labels": labels}
    assert Evaluation.diversity(real, alike, per_class=True)["value"] == pytest.approx(1.0, abs=0.1)
    assert Evaluation.diversity(real, collapsed, per_class=True)["value"] == pytest.approx(0.0, abs=1e-9)
    assert Evaluation.diversity(real, alike, per_class=False)["value"] == pytest.approx(1.0, abs=0.1)


def test_a_classifier_file_of_the_earlier_network_asks_for_a_new_one(setup, tmp_path):
    from vaegan.errors import VaeganError
    from vaegan.evaluation.classifier import FORMAT, VERSION
    from vaegan.runs.checkpoint import read_checkpoint, write_checkpoint

    _, classifier, _ = setup
    payload = read_checkpoint(classifier, file_format=FORMAT, version=VERSION)
    del payload["network"]  # as files written before the conv-group network
    old = tmp_path / "old.pt"
    write_checkpoint(old, payload, file_format=FORMAT, version=VERSION)
    with pytest.raises(VaeganError, match="holds an earlier network .* `vaegan classifier train`"):
        load_classifier(old, torch.device("cpu"))


def test_classifier_train_never_replaces_a_file_it_did_not_write(tmp_path, capsys):
    from vaegan.cli import main

    out = tmp_path / "notes.pt"
    out.write_text("the user's notes")
    args = ["classifier", "train", "--dataset", "shapes10", "--out", str(out), "train.max_steps=2",
            "model.channels=4", "train.device=cpu"]
    assert main(args) == 2
    assert "was not written by vaegan" in capsys.readouterr().err and out.read_text() == "the user's notes"
    out.unlink()
    assert main(args) == 0 and main(args) == 0  # its own file is replaced by a rerun
