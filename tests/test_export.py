"""export_run: the files load in a Python that cannot import vaegan and compute the run's own numbers."""

import json
import subprocess
import sys

import pytest
import torch

from vaegan.cli import main
from vaegan.errors import VaeganError
from vaegan.evaluation.run import load_run
from vaegan.export import export_run

BATCHES = (1, 5)
TOLERANCE = 1e-6  # the programs run the eager layers in NCHW, the opened run in channels_last: rounding only

# A fresh interpreter (-I, started outside the repository) where importing vaegan fails: the files must need
# nothing but torch. For each run's folder it feeds every batch of inputs.pt to gen.pt2 and gen-encoder.pt2.
WITHOUT_VAEGAN = """
import pathlib, sys
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
for folder in pathlib.Path(sys.argv[1]).iterdir():
    inputs, outputs = torch.load(folder / "inputs.pt"), {}
    for network, file in (("generator", "gen.pt2"), ("encoder", "gen-encoder.pt2")):
        if (folder / file).exists():
            program = torch.export.load(folder / file).module()
            with torch.no_grad():
                outputs[network] = {n: program(*args) for n, args in inputs[network].items()}
    torch.save(outputs, folder / "outputs.pt")
"""

RUNS = {"conv": {"model.name": "vaegan", "model.conditional": True},
        "class": {"model.name": "vaegan", "model.conditional": True, "model.class_norm": True,
                  "model.upsample": "resize", "model.prior": "class", "train.ema_decay": 0.9},
        "resnet": {"model.name": "vae", "model.arch": "resnet"},
        "gan": {"model.name": "gan"}}


@pytest.fixture(scope="module")
def runs(tiny_run):
    opened = {name: load_run(tiny_run(f"export-{name}", overrides), device="cpu") for name, overrides in RUNS.items()}
    with torch.no_grad():  # two steps leave the class prior at ~0: make it matter, as it does in a trained run
        opened["class"].model.prior_mean.weight.normal_()
    return opened


def inputs(run, batch):
    """(z, y) for the generator and (x, y) for the encoder; y only for a conditional model."""
    labels = (torch.arange(batch) % run.model.num_classes,) if run.model.conditional else ()
    z = torch.randn(batch, run.model.latent_dim, generator=torch.Generator().manual_seed(batch))
    x = run.dataset("test").images[:batch].float() / 127.5 - 1
    return {"generator": (z, *labels), "encoder": (x, *labels)}


@pytest.fixture(scope="module")
def exported(runs, tmp_path_factory):
    """name -> (files written, {network: {batch: what the files computed without vaegan}})."""
    folder = tmp_path_factory.mktemp("exported")
    written = {name: export_run(run, folder / name / "gen.pt2") for name, run in runs.items()}
    for name, run in runs.items():
        batches = {batch: inputs(run, batch) for batch in BATCHES}
        torch.save({network: {batch: batches[batch][network] for batch in BATCHES} for network in
                    ("generator", "encoder")}, folder / name / "inputs.pt")
    subprocess.run([sys.executable, "-I", "-c", WITHOUT_VAEGAN, str(folder)], check=True, cwd=folder)
    return {name: (written[name], torch.load(folder / name / "outputs.pt")) for name in runs}


def metadata(path):
    extra = {"vaegan.json": ""}
    torch.export.load(path, extra_files=extra)
    return json.loads(extra["vaegan.json"])


@pytest.mark.parametrize("name", RUNS)
def test_the_generator_gives_the_runs_images_without_vaegan(runs, exported, name):
    model = runs[name].model
    for batch in BATCHES:
        with torch.no_grad():
            expected = model.generate(*inputs(runs[name], batch)["generator"])
        images = exported[name][1]["generator"][batch]
        diff = (images - expected).abs().max().item()
        print(f"{name} generator, N={batch}: max abs diff {diff:.2e}")
        assert images.shape == (batch, 3, 32, 32) and diff <= TOLERANCE


@pytest.mark.parametrize("name", ["conv", "class", "resnet"])
def test_the_encoder_gives_the_runs_means_without_vaegan(runs, exported, name):
    model = runs[name].model
    for batch in BATCHES:
        x, *labels = inputs(runs[name], batch)["encoder"]
        with torch.no_grad():
            expected = model.encoder(x, model.labels(labels[0] if labels else None))
        for what, got, want in zip(("mean", "logvar"), exported[name][1]["encoder"][batch], expected):
            diff = (got - want).abs().max().item()
            print(f"{name} encoder {what}, N={batch}: max abs diff {diff:.2e}")
            assert got.shape == (batch, model.latent_dim) and diff <= TOLERANCE


def test_a_run_with_an_ema_exports_its_ema_generator(runs, exported):
    run = runs["class"]
    z, y = inputs(run, 5)["generator"]
    with torch.no_grad():
        trained = run.raw_model.generate(z, y)
    assert run.uses_ema and (exported["class"][1]["generator"][5] - trained).abs().max() > 1e-4
    assert [metadata(path)["uses_ema"] for path in exported["class"][0]] == [True, True]
    assert metadata(exported["conv"][0][0])["uses_ema"] is False


def test_the_files_say_what_they_hold(runs, exported):
    run = runs["class"]
    generator, encoder = exported["class"][0]
    assert encoder.name == "gen-encoder.pt2"
    about = metadata(generator)
    assert about["network"] == "generator" and about["call"] == "torch.export.load(path).module()(z, y) -> images"
    assert (about["run"], about["step"], about["latent_dim"], about["num_classes"], about["image_size"]) == (
        run.run_dir.name, run.step, 8, 10, 32)
    assert about["class_names"] == run.class_names and about["inputs"]["y"]["range"] == [0, 9]
    assert about["outputs"]["images"] == {"dtype": "float32", "shape": ["N", 3, 32, 32], "range": [-1, 1],
                                          "about": "uint8 pixels = round((images + 1) * 127.5)"}
    about = metadata(encoder)
    assert about["network"] == "encoder" and list(about["outputs"]) == ["mean", "logvar"]
    assert about["inputs"]["x"]["range"] == [-1, 1] and about["vaegan_version"]
    (gan,) = exported["gan"][0]
    about = metadata(gan)
    assert about["call"].endswith("(z) -> images") and list(about["inputs"]) == ["z"]
    assert (about["model"], about["num_classes"], about["class_names"]) == ("gan", 0, [])


def test_each_file_holds_only_its_network(exported):
    """No discriminator anywhere, and no encoder weights in the generator's file or the other way round."""
    generator, encoder = (torch.export.load(path).state_dict for path in exported["conv"][0])
    assert {key.split(".")[1] for key in generator} == {"decoder"}
    assert {key.split(".")[0] for key in encoder} == {"encoder"}


def test_exporting_leaves_the_run_as_it_was(runs, tmp_path):
    model = runs["class"].model
    before = {key: value.clone() for key, value in model.state_dict().items()}
    layouts = [p.is_contiguous(memory_format=torch.channels_last) for p in model.parameters() if p.dim() == 4]
    export_run(runs["class"], tmp_path / "g.pt2")
    assert all(torch.equal(before[key], value) for key, value in model.state_dict().items())
    assert [p.is_contiguous(memory_format=torch.channels_last) for p in model.parameters() if p.dim() == 4] == layouts
    assert any(layouts) and not model.training


def test_out_may_name_a_new_folder_but_not_be_one(runs, tmp_path):
    assert export_run(runs["gan"], tmp_path / "new" / "deeper" / "g.pt2") == [tmp_path / "new" / "deeper" / "g.pt2"]
    with pytest.raises(VaeganError, match="is a folder"):
        export_run(runs["gan"], tmp_path / "new")


def test_a_place_that_cannot_be_written_is_one_error(runs, tmp_path):
    (tmp_path / "a-file").write_text("")
    with pytest.raises(VaeganError, match="a-file is a file, not a folder"):
        export_run(runs["gan"], tmp_path / "a-file" / "g.pt2")


def test_the_command_writes_the_files_and_refuses_a_folder(runs, tmp_path, capsys):
    path = str(runs["resnet"].run_dir)
    assert main(["export", path, "--out", str(tmp_path / "vae.pt2"), "--device", "cpu"]) == 0
    assert (tmp_path / "vae.pt2").is_file() and (tmp_path / "vae-encoder.pt2").is_file()
    assert "vaegan is not needed" in capsys.readouterr().out
    assert main(["export", path, "--out", str(tmp_path)]) == 2
    assert "is a folder" in capsys.readouterr().err


def test_a_file_vaegan_did_not_write_is_never_replaced(runs, tmp_path, capsys):
    path = str(runs["resnet"].run_dir)
    (tmp_path / "notes-encoder.pt2").write_text("my own notes")
    assert main(["export", path, "--out", str(tmp_path / "notes.pt2"), "--device", "cpu"]) == 2
    assert "notes-encoder.pt2" in capsys.readouterr().err
    assert (tmp_path / "notes-encoder.pt2").read_text() == "my own notes" and not (tmp_path / "notes.pt2").exists()
    for _ in range(2):  # its own files vaegan replaces
        assert main(["export", path, "--out", str(tmp_path / "gen.pt2"), "--device", "cpu"]) == 0
