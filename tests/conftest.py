"""Fixtures shared across the test folders."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

from vaegan.config import Config, apply_overrides
from vaegan.data import make_shapes10
from vaegan.experiment import train

# Tests that take a device run on every one this machine has (benchmarks/gpu_check.py runs them on a GPU).
DEVICES = ["cpu", *(["cuda"] if torch.cuda.is_available() else []),
           *(["mps"] if torch.backends.mps.is_available() else [])]

TINY_RUN = {"data.name": "shapes10", "model.channels": 8, "model.d_channels": 8, "model.latent_dim": 8,
            "model.embed_dim": 4, "train.batch_size": 16, "train.max_steps": 2, "train.eval_images": 32,
            "train.device": "cpu"}


def pytest_configure(config):
    if os.environ.get("PYTEST_XDIST_WORKER"):  # `pytest -n 2` on 2 cores: one thread per worker, no oversubscription
        torch.set_num_threads(1)
        os.environ["OMP_NUM_THREADS"] = "1"  # and in the processes tests start, whose thread count (train.speed=auto
        # picks it from the cores free at start) would otherwise differ between two runs a test compares


@pytest.fixture(params=DEVICES)
def device(request) -> str:
    """Each device of this machine in turn."""
    return request.param


@pytest.fixture(scope="session")
def tiny():
    """tiny(**overrides) -> the Config of a 2-step run of a tiny model on shapes10."""
    return lambda **overrides: apply_overrides(Config(), {**TINY_RUN, **overrides})


@pytest.fixture(scope="session")
def tiny_args():
    """The same tiny run as command-line overrides."""
    return [f"{key}={value}" for key, value in TINY_RUN.items()]


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """make(name, overrides) -> the directory of a finished 2-step run of a tiny model on shapes10."""
    def make(name: str, overrides: dict) -> Path:
        run_dir = tmp_path_factory.mktemp(name) / name
        train(apply_overrides(Config(), {**TINY_RUN, **overrides}), run_dir)
        return run_dir
    return make


@pytest.fixture(scope="session")
def classifier_file():
    """make(path, seed) -> path of a small untrained metrics-classifier file (a perceptual network for shapes10)."""
    from vaegan.models.classifier import Classifier
    from vaegan.objectives.feature_networks import FORMAT, NETWORK, VERSION
    from vaegan.runs import checkpoint

    def make(path: Path, seed: int) -> str:
        torch.manual_seed(seed)
        checkpoint.write_checkpoint(path, {"state": Classifier(10, 4).state_dict(), "network": NETWORK, "channels": 4,
                                           "num_classes": 10, "dataset": "shapes10", "test_accuracy": 0.5},
                                    file_format=FORMAT, version=VERSION)
        return str(path)
    return make


@pytest.fixture
def dead_pid() -> int:
    """The id of a process that has exited (and been reaped), as a killed download's was."""
    child = subprocess.Popen([sys.executable, "-c", ""])
    child.wait()
    return child.pid


IMAGE_SIZES = [(32, 32), (64, 48), (40, 90), (33, 31)]


def _write_image_folder(root: Path, per_class: int = 6, classes=("circle", "square", "triangle"),
                        suffixes=(".png", ".jpg", ".bmp", ".webp")) -> None:
    shapes = make_shapes10("train", train_size=400)
    for label, name in enumerate(classes):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i, pixels in enumerate(shapes.images[shapes.labels == label][:per_class]):
            image = Image.fromarray(pixels.permute(1, 2, 0).numpy()).resize(IMAGE_SIZES[i % len(IMAGE_SIZES)])
            image.save(root / name / f"{i:03d}{suffixes[i % len(suffixes)]}")


@pytest.fixture(scope="session")
def image_folder():
    """image_folder(root, per_class=6, classes=(...)) writes shapes10 images as PNG/JPEG/BMP/WebP files of mixed
    sizes, one subfolder of `root` per class: a user's own data."""
    return _write_image_folder
