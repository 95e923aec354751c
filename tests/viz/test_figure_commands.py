"""sample / reconstruct / interpolate on tiny trained runs, through the command line entry point."""

from html.parser import HTMLParser

import pytest
from PIL import Image

from vaegan.cli import main

@pytest.fixture(scope="module")
def runs(tiny_run):
    return {name: tiny_run(name, extra) for name, extra in {
        "cvaegan": {"model.name": "vaegan", "model.conditional": True, "train.ema_decay": 0.9},
        "vae": {"model.name": "vae"},
        "gan": {"model.name": "gan", "model.conditional": True, "loss.gan_weight": 1.0}}.items()}


def _run(*args: str) -> int:
    return main([*args, "--device", "cpu"])


def test_sample_writes_a_class_grid_with_the_rows_asked_for(runs, capsys):
    out = runs["cvaegan"] / "three.png"
    assert _run("sample", str(runs["cvaegan"]), "--classes", "1,4-5", "--per-class", "3", "--out", str(out)) == 0
    assert "EMA generator" in capsys.readouterr().out
    width, height = Image.open(out).size
    assert height == 3 * (3 * 34 + 2) and width > 3 * (3 * 34 + 2)  # three labelled rows of three
    assert _run("sample", str(runs["vae"])) == 0
    assert (runs["vae"] / "figures" / "samples.png").is_file()


@pytest.mark.parametrize("args, message", [
    (["--classes", "0-12"], "classes 0-9"),
    (["--classes", "two"], "invalid --classes"),
    (["--classes", "0-2000000000"], "classes 0-9"),  # refused before the range is built
    (["--classes", "5-3"], "classes 0-9"),
])
def test_bad_class_requests_are_one_clear_error(runs, capsys, args, message):
    assert _run("sample", str(runs["cvaegan"]), *args) == 2
    assert message in capsys.readouterr().err


def test_a_latent_map_of_too_few_images_for_its_knn_is_one_line(runs, capsys):
    assert _run("latent-map", str(runs["vae"]), "--n", "3") == 2
    assert "at least 6 images" in capsys.readouterr().err


def test_running_out_of_memory_is_one_line(runs, capsys, monkeypatch):
    def no_memory(*args, **kwargs):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:121] DefaultCPUAllocator: can't allocate memory: you "
                           "tried to allocate 400000000000 bytes")
    monkeypatch.setattr("vaegan.evaluation.run.build_model", no_memory)
    assert _run("sample", str(runs["vae"])) == 2
    err = capsys.readouterr().err
    assert err.startswith("vaegan: error: out of memory") and len(err.strip().splitlines()) == 1


def test_an_unconditional_model_asked_for_classes_says_so(runs, capsys):
    assert _run("sample", str(runs["vae"]), "--classes", "0-3") == 2
    assert "unconditional" in capsys.readouterr().err


def test_reconstruct_prints_and_captions_the_batch_and_split_mse(runs, capsys):
    assert _run("reconstruct", str(runs["cvaegan"]), "--n", "8") == 0
    out = capsys.readouterr().out
    assert "on the first 8 test images" in out and "on all 2000" in out
    image = Image.open(runs["cvaegan"] / "figures" / "reconstructions-test.png")
    assert image.height > 2 * 3 * 34  # the grid (2 rows of 8 at scale 3) plus its caption


def test_interpolate_writes_latent_and_label_paths(runs):
    assert _run("interpolate", str(runs["cvaegan"]), "--pairs", "2", "--steps", "5", "--mode", "slerp") == 0
    figures = runs["cvaegan"] / "figures"
    assert (figures / "interpolation-slerp.png").is_file() and (figures / "interpolation-slerp-labels.png").is_file()
    assert _run("interpolate", str(runs["vae"]), "--pairs", "1", "--steps", "3") == 0
    assert not (runs["vae"] / "figures" / "interpolation-linear-labels.png").exists()  # no labels to move along


@pytest.mark.parametrize("command", ["reconstruct", "interpolate"])
def test_a_gan_cannot_reconstruct_or_interpolate(runs, capsys, command):
    assert _run(command, str(runs["gan"])) == 2
    assert "without an encoder" in capsys.readouterr().err


def test_a_run_without_a_checkpoint_is_one_clear_error(tmp_path, capsys):
    assert _run("sample", str(tmp_path)) == 2
    assert "no checkpoint" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["cvaegan", "gan"])
def test_curves_plot_every_logged_quantity(runs, name):
    assert main(["curves", str(runs[name])]) == 0
    assert Image.open(runs[name] / "figures" / "curves.png").size[0] > 500


def test_curves_of_a_run_without_steps_is_one_clear_error(tmp_path, capsys):
    assert main(["curves", str(tmp_path)]) == 2
    assert "nothing to plot" in capsys.readouterr().err


def test_latent_map_titles_the_knn_accuracy(runs, capsys):
    assert _run("latent-map", str(runs["cvaegan"]), "--n", "200") == 0
    assert "5-NN accuracy of 200 test means" in capsys.readouterr().out
    assert (runs["cvaegan"] / "figures" / "latent-map-pca.png").is_file()
    assert _run("latent-map", str(runs["gan"])) == 2


class _Page(HTMLParser):
    """Collects image sources and text of a page; fails on unbalanced block tags."""

    def __init__(self):
        super().__init__()
        self.images, self.text, self.open = [], [], []

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.images.append(dict(attrs)["src"])
        elif tag in ("div", "table", "figure", "pre", "body", "html", "h1", "h2"):
            self.open.append(tag)

    def handle_endtag(self, tag):
        if tag in ("div", "table", "figure", "pre", "body", "html", "h1", "h2"):
            assert self.open.pop() == tag

    def handle_data(self, data):
        self.text.append(data)


def _parse(page):
    parser = _Page()
    parser.feed(page.read_text())
    assert not parser.open
    return parser


@pytest.mark.parametrize("name, figures", [("cvaegan", 6), ("gan", 2)])
def test_report_is_html_whose_images_exist_with_config_and_metrics(runs, name, figures):
    assert _run("report", str(runs[name]), "--latent-images", "100") == 0
    page = runs[name] / "report.html"
    parsed = _parse(page)
    assert len(parsed.images) == figures  # cvaegan: curves, samples, recon, 2 interpolations, latent map
    assert all((page.parent / src).is_file() for src in parsed.images)
    text = "".join(parsed.text)
    assert "latent_dim: 8" in text and "D loss" in text and "torch" in text
    if name == "cvaegan":
        assert "MSE per pixel" in text


def test_compare_puts_runs_side_by_side_with_a_metrics_table(runs, tmp_path):
    (runs["vae"] / "eval.json").write_text('{"metrics": {"fcd": {"value": 12.625, "protocol": {}}}}')
    page = tmp_path / "cmp.html"
    assert main(["compare", str(runs["cvaegan"]), str(runs["vae"]), str(runs["gan"]), "--out", str(page),
                 "--device", "cpu"]) == 0
    parsed = _parse(page)
    assert len(parsed.images) == 2 + 2 + 1  # samples + reconstructions, except the GAN's reconstructions
    assert all((page.parent / src).is_file() for src in parsed.images)
    assert all(name in "".join(parsed.text) for name in ("cvaegan", "vae", "gan", "test MSE/pixel", "FCD", "12.62"))


@pytest.mark.parametrize("name", ["vae", "cvaegan"])
def test_interpolation_endpoints_are_the_reconstructions_of_the_endpoints(runs, name):
    import torch

    from vaegan.evaluation.run import load_run
    from vaegan.viz.figures import first_images
    from vaegan.evaluation.interpolation import interpolation_rows

    run = load_run(runs[name], "cpu")
    x, y = first_images(run.dataset("test"), 4, run.device)
    rows = interpolation_rows(run.model, x, y, steps=5, mode="slerp")
    with torch.inference_mode():
        recon = run.model(x, y)[0]
    latent = rows["latent"].view(2, 7, 3, 32, 32)
    assert torch.allclose(latent[:, 1], recon[0::2], atol=1e-5)  # t = 0: the first image's reconstruction
    if run.model.conditional:
        assert torch.allclose(rows["label"].view(2, 7, 3, 32, 32)[:, 1], recon[0::2], atol=1e-5)
    else:
        assert torch.allclose(latent[:, -2], recon[1::2], atol=1e-5)  # t = 1: the second image's


@pytest.mark.parametrize("command", [["sample", "--seed", "3"], ["interpolate", "--seed", "3", "--steps", "4"]])
def test_the_same_seed_gives_byte_identical_pngs(runs, tmp_path, command):
    outputs = []
    for attempt in range(2):
        out = tmp_path / f"{attempt}.png"
        assert _run(command[0], str(runs["cvaegan"]), *command[1:], "--out", str(out)) == 0
        outputs.append(out.read_bytes())
    assert outputs[0] == outputs[1]


def test_compare_never_overwrites_a_page_or_png_it_did_not_write_and_updates_its_own(runs, tmp_path, capsys):
    page, theirs = tmp_path / "cmp.html", tmp_path / "cmp-figures" / "vae" / "samples.png"
    theirs.parent.mkdir(parents=True)
    theirs.write_bytes(b"the user's picture")
    assert main(["compare", str(runs["vae"]), "--out", str(page), "--device", "cpu"]) == 2
    assert "was not written by vaegan" in capsys.readouterr().err and not page.exists()
    assert theirs.read_bytes() == b"the user's picture"
    theirs.unlink()
    assert main(["compare", str(runs["vae"]), "--out", str(page), "--device", "cpu"]) == 0
    assert main(["compare", str(runs["vae"]), "--out", str(page), "--device", "cpu"]) == 0  # vaegan's own: updated
    page.write_text("edited by hand")
    assert main(["compare", str(runs["vae"]), "--out", str(page), "--device", "cpu"]) == 2
    assert page.read_text() == "edited by hand"
