"""vaegan export: the files load and sample the run's images in a Python that cannot import vaegan."""

import json
import subprocess
import sys

import pytest
import torch

import vaegan
from vaegan.cli import main
from vaegan.viz.samples import fixed_latents

# Runs in a fresh interpreter where importing vaegan fails: the files must need nothing but torch.
WITHOUT_VAEGAN = """
import sys
class NoVaegan:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "vaegan":
            raise ImportError("vaegan is not installed here")
sys.meta_path.insert(0, NoVaegan())
try:
    import vaegan
except ImportError:
    pass
else:
    raise SystemExit("vaegan was importable")
import torch
folder = sys.argv[1]
inputs = torch.load(folder + "/inputs.pt")
outputs = {"images": torch.export.load(folder + "/gen.pt2").module()(*inputs["generator"])}
try:
    encoder = torch.export.load(folder + "/gen-encoder.pt2").module()
except FileNotFoundError:
    pass
else:
    outputs["mean"], outputs["logvar"] = encoder(*inputs["encoder"])
torch.save(outputs, folder + "/outputs.pt")
"""


@pytest.fixture(scope="module")
def runs(tiny_run):
    return {name: vaegan.open_run(tiny_run(f"export-{name}", extra), device="cpu") for name, extra in {
        "cvaegan": {"model.name": "vaegan", "model.conditional": True, "train.ema_decay": 0.9,
                    "model.class_norm": True, "model.upsample": "resize", "model.prior": "class"},
        "vae": {"model.name": "vae"},
        "gan": {"model.name": "gan", "model.conditional": True}}.items()}


@pytest.mark.parametrize("name, batch", [("cvaegan", 5), ("vae", 1), ("gan", 3)])
def test_the_exported_files_reproduce_the_run_without_vaegan(runs, tmp_path, name, batch):
    run = runs[name]
    model = run.model
    written = run.export(tmp_path / "gen.pt2")
    assert written[0] == tmp_path / "gen.pt2" and len(written) == (1 if model.encoder is None else 2)
    z = fixed_latents(model, batch, seed=3)
    y = torch.arange(batch) % 10 if model.conditional else None
    x = run.images("test", batch)[0].float() / 127.5 - 1
    labels = (y,) if model.conditional else ()
    torch.save({"generator": (z, *labels), "encoder": (x, *labels)}, tmp_path / "inputs.pt")
    subprocess.run([sys.executable, "-I", "-c", WITHOUT_VAEGAN, str(tmp_path)], check=True, cwd=tmp_path)
    outputs = torch.load(tmp_path / "outputs.pt")
    with torch.no_grad():
        expected = model.generate(z, y)
        assert (outputs["images"] - expected).abs().max().item() <= 1e-6
        if model.encoder is not None:
            mean, logvar = model.encoder(x, model.labels(y))
            assert (outputs["mean"] - mean).abs().max().item() <= 1e-6
            assert (outputs["logvar"] - logvar).abs().max().item() <= 1e-6


def test_the_files_say_what_they_hold(runs, tmp_path):
    run = runs["cvaegan"]
    generator, encoder = run.export(tmp_path / "g.pt2")
    extra = {"vaegan.json": ""}
    torch.export.load(generator, extra_files=extra)
    about = json.loads(extra["vaegan.json"])
    assert about["network"] == "generator" and about["generator"] == "EMA" and about["step"] == run.step
    assert about["latent_dim"] == 8 and about["class_names"] == run.class_names and "z, y" in about["call"]
    torch.export.load(encoder, extra_files=extra)
    assert json.loads(extra["vaegan.json"])["network"] == "encoder"


def test_the_command_writes_the_files_and_refuses_a_folder(runs, tmp_path, capsys):
    run = runs["vae"]
    assert main(["export", str(run.path), "--out", str(tmp_path / "vae.pt2"), "--device", "cpu"]) == 0
    assert (tmp_path / "vae.pt2").is_file() and (tmp_path / "vae-encoder.pt2").is_file()
    assert "vaegan is not needed" in capsys.readouterr().out
    assert main(["export", str(run.path), "--out", str(tmp_path)]) == 2
    assert "is a folder" in capsys.readouterr().err
