"""vaegan's Python API on tiny runs: training, opening, the model on images, metrics and figures."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

import vaegan
from vaegan.errors import VaeganError
from vaegan.viz.samples import class_conditional_samples
from vaegan.viz.grid import to_uint8

CONDITIONAL = {"model.name": "vaegan", "model.conditional": True, "train.ema_decay": 0.9}


@pytest.fixture(scope="module")
def conditional(tiny_run):
    return vaegan.open_run(tiny_run("api-cond", CONDITIONAL), device="cpu")


@pytest.fixture(scope="module")
def unconditional(tiny_run):
    return vaegan.open_run(tiny_run("api-vae", {"model.name": "vae"}), device="cpu")


def test_train_returns_the_finished_run_and_resume_continues_it(tmp_path, tiny_args):
    tiny = dict(arg.split("=", 1) for arg in tiny_args)
    run = vaegan.train("cvaegan-cifar100", tmp_path / "run", {**tiny, "train.max_steps": 2})
    assert isinstance(run, vaegan.Run) and run.summary["step"] == 2 and run.step == 2
    assert run.config.data.name == "shapes10" and run.config.model.conditional
    resumed = vaegan.resume(run.path, {"train.max_steps": 4}, device="cpu")
    assert resumed.step == 4 and resumed.summary["step"] == 4
    assert [r["step"] for r in resumed.metrics("train", as_frame=False)] == [1, 2, 3, 4]
    with pytest.raises(VaeganError, match="already finished"):
        vaegan.resume(run.path)
    with pytest.raises(VaeganError, match="train.max_stepz"):
        vaegan.train("cvaegan-cifar100", tmp_path / "other", {"train.max_stepz": 2})


def test_open_run_fails_at_once_on_a_folder_that_holds_no_run(tmp_path):
    with pytest.raises(VaeganError):
        vaegan.open_run(tmp_path / "nothing")


def test_import_vaegan_loads_no_torch_until_the_api_is_used():
    code = ("import sys, vaegan; assert 'torch' not in sys.modules; assert 'open_run' in dir(vaegan); "
            "vaegan.open_run; assert 'torch' in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_metrics_are_a_data_frame_with_pandas_and_dicts_without(conditional, monkeypatch):
    pandas = pytest.importorskip("pandas")
    frame = conditional.metrics()
    assert isinstance(frame, pandas.DataFrame) and set(frame["kind"]) == {"train", "test"}
    records = conditional.metrics("test", as_frame=False)
    assert frame[frame["kind"] == "test"]["mse_per_pixel"].tolist() == [r["mse_per_pixel"] for r in records]
    monkeypatch.setattr("importlib.util.find_spec", lambda name, *a: None if name == "pandas" else object())
    assert conditional.metrics("test") == records


def test_sample_gives_the_grid_images_as_uint8_pil_or_floats(conditional):
    images = conditional.sample(count=3, classes=[1, "green square"], seed=5)
    assert images.dtype == torch.uint8 and images.shape == (6, 3, 32, 32) and images.device.type == "cpu"
    square = conditional.class_names.index("green square")
    expected = class_conditional_samples(conditional.model, [1, square], 3, seed=5)
    assert torch.equal(images, to_uint8(expected))
    floats = conditional.sample(count=3, classes=[1, "green square"], seed=5, output="float")
    assert floats.dtype == torch.float32 and torch.equal(to_uint8(floats), images)
    pils = conditional.sample(count=2, classes=0, output="pil")
    assert len(pils) == 2 and all(isinstance(p, Image.Image) and p.size == (32, 32) for p in pils)
    raw = conditional.sample(count=3, classes=[1], seed=5, ema=False)
    assert conditional.uses_ema and not torch.equal(raw, images[:3])  # the trained generator, not its EMA


@pytest.mark.parametrize("call, message", [
    (lambda run: run.sample(classes=None), "give classes"),
    (lambda run: run.sample(classes=[10]), "classes 0-9"),
    (lambda run: run.sample(classes=["unicorn"]), "unknown class 'unicorn'"),
    (lambda run: run.sample(classes=[0], count=0), "count=0: give a whole number >= 1"),
    (lambda run: run.sample_grid(per_class=2.5), "per_class=2.5"),
    (lambda run: run.interpolation_grids(pairs=0), "pairs=0"),
    (lambda run: run.latent_map(n=5), "at least 6 images"),
    (lambda run: run.sample(classes=[0], output="png"), "uint8, pil, float"),
    (lambda run: run.encode(torch.zeros(2, 3, 16, 16, dtype=torch.uint8), 0), r"\[N,3,32,32\]"),
    (lambda run: run.encode(torch.zeros(2, 3, 32, 32, dtype=torch.int32), 0), "uint8 pixels"),
    (lambda run: run.encode(torch.full((1, 3, 32, 32), 200.0), 0), r"\[-1, 1\]"),
    (lambda run: run.encode(torch.zeros(2, 3, 32, 32, dtype=torch.uint8)), "give labels"),
    (lambda run: run.encode(torch.zeros(2, 3, 32, 32, dtype=torch.uint8), [0, 1, 2]), "3 for 2 images"),
    (lambda run: run.decode(torch.zeros(2, 5), 0), r"\[N, 8\]"),
    (lambda run: run.interpolate(torch.zeros(3, 32, 32, dtype=torch.uint8),
                                 torch.zeros(3, 32, 32, dtype=torch.uint8), 0, steps=1), "at least 2"),
])
def test_bad_arguments_are_one_clear_error(conditional, call, message):
    with pytest.raises(VaeganError, match=message):
        call(conditional)


def test_an_unconditional_model_takes_no_classes_and_samples_without(unconditional):
    assert unconditional.sample(count=4).shape == (4, 3, 32, 32)
    with pytest.raises(VaeganError, match="unconditional"):
        unconditional.sample(classes=[0])
    with pytest.raises(VaeganError, match="unconditional"):
        unconditional.sample_grid(classes=[0])


def test_encode_decode_and_reconstruct_agree_on_uint8_pil_and_float_images(conditional):
    test_images, labels = conditional.images("test", 4)
    assert test_images.dtype == torch.uint8 and test_images.shape == (4, 3, 32, 32) and labels.shape == (4,)
    encoding = conditional.encode(test_images, labels)
    assert encoding.mean.shape == encoding.logvar.shape == (4, 8)
    pils = [Image.fromarray(image.permute(1, 2, 0).numpy()) for image in test_images]
    assert torch.equal(conditional.encode(pils, labels).mean, encoding.mean)
    assert torch.equal(conditional.encode(test_images.float() / 127.5 - 1, labels).mean, encoding.mean)
    recon = conditional.reconstruct(test_images, labels)
    assert recon.dtype == torch.uint8 and torch.equal(recon, conditional.decode(encoding.mean, labels))
    assert torch.equal(conditional.reconstruct(test_images[0], [labels[0].item()]), recon[:1])  # one [3,H,W] image
    large = pils[0].resize((96, 64))  # another size: resized and centre-cropped like the user's own images
    assert conditional.reconstruct(large, 0).shape == (1, 3, 32, 32)


def test_interpolate_decodes_the_path_between_two_images_means(conditional):
    images, _ = conditional.images(n=2)
    path = conditional.interpolate(images[0], images[1], labels=[0, 0], steps=5, output="float")
    assert path.shape == (5, 3, 32, 32)
    ends = conditional.decode(conditional.encode(images, 0).mean, 0, output="float")
    assert torch.allclose(path[0], ends[0], atol=1e-6) and torch.allclose(path[-1], ends[1], atol=1e-6)
    assert len(conditional.interpolate(images[0], images[1], 0, steps=3, mode="slerp", output="pil")) == 3


def test_evaluate_returns_the_record_written_to_eval_json(conditional):
    record = conditional.evaluate(["recon", "sharp", "fid"], n=32)
    assert set(record["metrics"]) == {"recon", "sharp"} and "fid" in record["skipped"]
    assert record["metrics"]["recon"]["mse_per_pixel"] > 0
    assert json.loads(conditional.rundir.eval.read_text()) == record
    with pytest.raises(VaeganError, match="unknown metric"):
        conditional.evaluate(["fidd"])


def test_each_figure_is_a_pil_image_and_written_where_asked(conditional, tmp_path):
    grid = conditional.sample_grid(classes=["red disc", 2], per_class=3, out=tmp_path / "s.png")
    assert isinstance(grid.image, Image.Image) and grid.path == tmp_path / "s.png"
    assert Image.open(grid.path).size == grid.image.size and grid._repr_png_().startswith(b"\x89PNG")
    recon = conditional.reconstruction_grid(n=8)
    assert recon.path is None and recon.numbers["images"] == 2000 and recon.numbers["batch_mse_per_pixel"] > 0
    paths = conditional.interpolation_grids(pairs=2, steps=4, out=tmp_path / "i.png")
    assert set(paths) == {"latent", "label"} and (tmp_path / "i-labels.png").is_file()
    latent = conditional.latent_map(n=40)
    assert latent.image.size[0] > 600 and 0 <= latent.numbers["knn_accuracy"] <= 1
    assert conditional.curves().image.size[0] > 300
    assert conditional.report(latent_images=40).is_file()
    with pytest.raises(VaeganError, match="no quality records"):
        vaegan.quality_curves([conditional])
    assert grid.save(tmp_path / "again.png").is_file()


def test_the_readme_example_runs(tmp_path, monkeypatch):
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme[readme.index("### From Python"):]
    start = section.index("```python\n") + len("```python\n")
    code = section[start:section.index("\n```", start)]
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)
    assert namespace["images"].shape == (16, 3, 32, 32) and len(namespace["path"]) == 8
    assert namespace["recon"].dtype == torch.uint8 and namespace["recon"].shape == (4, 3, 32, 32)
    assert torch.equal(namespace["recon"], namespace["same"]) and namespace["page"].is_file()
    assert namespace["run"].step == 60 and (tmp_path / "runs/py-quick/figures/map.png").is_file()


def test_quality_curves_draw_runs_that_logged_quality_records(conditional, tmp_path):
    import shutil

    runs = []
    for name, fcd in (("a", 90.0), ("b", 60.0)):
        shutil.copytree(conditional.path, tmp_path / name)
        with open(tmp_path / name / "metrics.jsonl", "a") as f:
            for step in (1, 2):
                f.write(json.dumps({"kind": "quality", "step": step, "epoch": step, "images": 16 * step,
                                    "seconds": 1.5 * step, "fcd": fcd / step, "cc": 0.01 * step}) + "\n")
        runs.append(vaegan.Run(tmp_path / name))
    picture = vaegan.quality_curves(runs, out=tmp_path / "q.png")
    assert picture.path.is_file() and picture.image.size[0] > 600
