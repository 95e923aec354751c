"""The perceptual loss: its distance, its frozen networks and the files they come from."""

import pytest
import torch

from vaegan.config import LossConfig
from vaegan.errors import VaeganError
from vaegan.models import vgg16
from vaegan.models.classifier import Classifier
from vaegan.objectives.feature_networks import FORMAT, NETWORK, VERSION, load_classifier, load_vgg16
from vaegan.objectives.perceptual import PerceptualLoss, build_perceptual_loss, perceptual_distance
from vaegan.runs.checkpoint import write_checkpoint


def classifier_file(path, classes=10, channels=4):
    torch.manual_seed(0)
    write_checkpoint(path, {"state": Classifier(classes, channels).state_dict(), "network": NETWORK,
                            "channels": channels, "num_classes": classes, "dataset": "shapes10",
                            "test_accuracy": 0.5}, file_format=FORMAT, version=VERSION)
    return path


def test_the_distance_is_zero_for_identical_inputs_positive_otherwise_and_blind_to_feature_scale():
    a = [torch.randn(4, 8, 16, 16), torch.randn(4, 16, 4, 4)]
    b = [torch.randn(4, 8, 16, 16), torch.randn(4, 16, 4, 4)]
    assert torch.equal(perceptual_distance(a, a), torch.zeros(4))
    assert (perceptual_distance(a, b) > 0).all()
    scaled = [3.0 * a[0], a[1] * torch.rand(4, 1, 4, 4).add(0.5)]  # per-position scale: unit-normalised away
    assert torch.allclose(perceptual_distance(a, scaled), torch.zeros(4), atol=1e-6)
    # unit vectors differ by at most 2 in length: each layer adds at most 4
    assert (perceptual_distance(a, [-a[0], -a[1]]) - 8).abs().max() < 1e-4


def test_gradients_reach_the_reconstruction_and_never_the_frozen_network(tmp_path):
    loss = build_perceptual_loss(LossConfig(perceptual_weight=1.0, perceptual_weights=str(
        classifier_file(tmp_path / "c.pt"))), tmp_path, torch.device("cpu"))
    loss.train()  # a parent's train() must not reach the frozen network's BatchNorm
    assert not loss.network.training
    x = torch.rand(3, 3, 32, 32) * 2 - 1
    x_hat = (torch.rand(3, 3, 32, 32) * 2 - 1).requires_grad_()
    before = {k: v.clone() for k, v in loss.network.state_dict().items()}
    value = loss(x_hat, x)
    value.backward()
    assert value > 0 and x_hat.grad is not None and x_hat.grad.abs().sum() > 0
    assert all(p.grad is None and not p.requires_grad for p in loss.network.parameters())
    assert all(torch.equal(v, before[k]) for k, v in loss.network.state_dict().items())
    assert loss(x, x).item() == 0


def test_a_damaged_classifier_file_says_to_train_a_new_one_not_to_start_a_run_over(tmp_path):
    """The file is the user's (or `vaegan classifier train`'s), not a run's checkpoint."""
    path = classifier_file(tmp_path / "c.pt")
    path.write_bytes(path.read_bytes()[:-200])
    with pytest.raises(VaeganError, match="corrupt or truncated") as error:
        load_classifier(path, torch.device("cpu"))
    assert "vaegan classifier train" in str(error.value) and "start over" not in str(error.value)


def _bad_state(kind: str) -> dict:
    state = Classifier(10, 4).state_dict()
    if kind == "missing key":
        del state["groups.1.0.weight"]
    elif kind == "other shape":
        state["groups.1.0.weight"] = torch.zeros(16, 4, 1, 1)
    return {"tensor": torch.zeros(3), "int key": {1: torch.zeros(3)}}.get(kind, state)


BAD_RECORDS = {  # field -> value; every other field as `vaegan classifier train` writes it
    "negative channels": ("channels", -4), "fractional channels": ("channels", 2.5),
    "channels far beyond the state": ("channels", 10**30), "zero classes": ("num_classes", 0),
    "classes as text": ("num_classes", "10"), "class names as text": ("class_names", "abcdefghij"),
    "class names of numbers": ("class_names", list(range(10))), "too few class names": ("class_names", ["a"]),
    "dataset a number": ("dataset", 3), "accuracy above 1": ("test_accuracy", 2.0),
    "state a tensor": ("state", _bad_state("tensor")), "state with an int key": ("state", _bad_state("int key")),
    "state missing a key": ("state", _bad_state("missing key")),
    "state of another shape": ("state", _bad_state("other shape")),
}


@pytest.mark.parametrize("field, value", BAD_RECORDS.values(), ids=BAD_RECORDS)
def test_a_classifier_file_with_an_invalid_record_is_one_error_naming_the_field(tmp_path, field, value):
    path = tmp_path / "c.pt"
    payload = {"state": Classifier(10, 4).state_dict(), "network": NETWORK, "channels": 4, "num_classes": 10,
               "class_names": list("abcdefghij"), "dataset": "shapes10", "test_accuracy": 0.5}
    write_checkpoint(path, {**payload, field: value}, file_format=FORMAT, version=VERSION)
    with pytest.raises(VaeganError, match=f"classifier {path} has an invalid {field} "):
        load_classifier(path, torch.device("cpu"))


def small_vgg_file(path, monkeypatch, **changes):
    """torchvision's VGG16 file layout with its (unused) classifier layers shrunk, to keep the file small."""
    monkeypatch.setattr(vgg16, "CLASSIFIER_SHAPES", {"classifier.0.weight": (2, 3), "classifier.6.bias": (1,)})
    torch.manual_seed(0)
    state = {f"features.{k}": v for k, v in vgg16.VGG16Features().features.state_dict().items()}
    state.update({"classifier.0.weight": torch.zeros(2, 3), "classifier.6.bias": torch.zeros(1)}, **changes)
    torch.save(state, path)
    return state


def test_a_vgg16_file_of_torchvisions_layout_loads_and_any_other_is_refused(tmp_path, monkeypatch):
    state = small_vgg_file(tmp_path / "vgg16-397923af.pth", monkeypatch)
    network = load_vgg16(tmp_path / "vgg16-397923af.pth", torch.device("cpu"))
    assert torch.equal(network.features[28].weight, state["features.28.weight"])
    small_vgg_file(tmp_path / "other.pth", monkeypatch, **{"features.28.weight": torch.zeros(512, 512, 1, 1)})
    with pytest.raises(VaeganError, match="not torchvision's VGG16 weights file.*features.28.weight differs"):
        load_vgg16(tmp_path / "other.pth", torch.device("cpu"))
    torch.save({"features.0.weight": torch.zeros(1)}, tmp_path / "part.pth")
    with pytest.raises(VaeganError, match="not torchvision's VGG16"):
        load_vgg16(tmp_path / "part.pth", torch.device("cpu"))


def test_the_vgg16_file_comes_from_the_config_then_the_environment_and_its_absence_says_how_to_get_it(
        tmp_path, monkeypatch):
    small_vgg_file(tmp_path / "mine.pth", monkeypatch)
    cfg = LossConfig(perceptual_weight=1.0, perceptual_net="vgg16")
    monkeypatch.setenv("VAEGAN_VGG", str(tmp_path / "mine.pth"))
    assert isinstance(build_perceptual_loss(cfg, tmp_path / "cache", torch.device("cpu")), PerceptualLoss)
    monkeypatch.setenv("VAEGAN_VGG", str(tmp_path / "absent.pth"))
    with pytest.raises(VaeganError, match="download https://download.pytorch.org/models/vgg16-397923af.pth and "
                                          "set VAEGAN_VGG="):
        build_perceptual_loss(cfg, tmp_path / "cache", torch.device("cpu"))
    assert build_perceptual_loss(LossConfig(), tmp_path, torch.device("cpu")) is None
