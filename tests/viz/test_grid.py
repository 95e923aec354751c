import numpy as np
import torch
from PIL import Image

from vaegan.cli import main
from vaegan.config import ModelConfig
from vaegan.models import build_model
from vaegan.viz import (class_conditional_samples, fixed_latents, make_grid, reconstruction_grid, save_png,
                        save_sample_grid, to_uint8)


def test_denormalisation_round_trips_every_uint8_value_exactly():
    values = torch.arange(256, dtype=torch.uint8).view(1, 1, 16, 16).expand(1, 3, 16, 16)
    normalised = values.float() / 127.5 - 1.0  # what the loader feeds the model
    assert torch.equal(to_uint8(normalised), values)


def test_denormalisation_clamps_out_of_range_values():
    assert to_uint8(torch.tensor([-1.5, 1.5])).tolist() == [0, 255]


def test_grid_places_each_image_at_its_row_and_column():
    images = torch.stack([torch.full((3, 4, 5), i, dtype=torch.uint8) for i in range(5)])
    grid = make_grid(images, ncol=3, padding=2, pad_value=255)
    assert grid.shape == (3, 2 + 2 * (4 + 2), 2 + 3 * (5 + 2))
    for i in range(5):
        row, col = divmod(i, 3)
        top, left = 2 + row * 6, 2 + col * 7
        assert (grid[:, top:top + 4, left:left + 5] == i).all()
    assert (grid[:, 0:2, :] == 255).all() and (grid[:, 8:14, 16:21] == 255).all()  # border and empty cell


def test_reconstruction_grid_alternates_real_and_reconstructed_rows():
    real, recon = torch.full((3, 3, 2, 2), -1.0), torch.full((3, 3, 2, 2), 1.0)
    grid = reconstruction_grid(real, recon, ncol=3)
    assert (grid[:, 2:4, 2:4] == 0).all() and (grid[:, 6:8, 2:4] == 255).all()


def test_png_is_upscaled_with_nearest_neighbour(tmp_path):
    grid = torch.tensor([[[0, 255]], [[10, 20]], [[30, 40]]], dtype=torch.uint8)  # 1x2 RGB
    path = save_png(grid, tmp_path / "g.png", scale=3)
    image = Image.open(path)
    assert image.size == (6, 3)
    assert image.getpixel((0, 0)) == (0, 10, 30) and image.getpixel((5, 2)) == (255, 20, 40)


def test_class_conditional_grid_rows_are_classes_and_columns_share_z():
    torch.manual_seed(0)
    model = build_model(ModelConfig(name="gan", conditional=True, channels=8, d_channels=8, latent_dim=8,
                                    embed_dim=4), num_classes=10)
    images = class_conditional_samples(model, [0, 3, 7], per_class=4, seed=5)
    assert images.shape == (12, 3, 32, 32)
    direct = model.eval().decoder(fixed_latents(model, 4, 5), torch.full((4,), 3))
    assert torch.allclose(images[4:8], direct)  # row 2 is class 3 at the same four latents
    assert torch.equal(images, class_conditional_samples(model, [0, 3, 7], per_class=4, seed=5))


def test_sample_grid_png_has_a_label_margin_only_for_conditional_models(tmp_path):
    cfg = {"channels": 8, "d_channels": 8, "latent_dim": 8, "embed_dim": 4}
    conditional = build_model(ModelConfig(name="gan", conditional=True, **cfg), num_classes=10)
    plain = build_model(ModelConfig(name="gan", conditional=False, **cfg), num_classes=10)
    names = [f"class number {i}" for i in range(10)]
    labelled = Image.open(save_sample_grid(conditional, tmp_path / "c.png", names, scale=2))
    unlabelled = Image.open(save_sample_grid(plain, tmp_path / "p.png", scale=2))
    grid_side = 2 * (8 * 34 + 2)
    assert unlabelled.size == (grid_side, grid_side)
    assert labelled.height == grid_side and labelled.width > grid_side + 50  # rows 0-7 with their names
    margin = labelled.width - grid_side
    left = np.asarray(labelled)[:, :margin]
    assert (left < 128).any()  # text was drawn


def test_latent_map_colours_cifar100_by_its_superclasses():
    import dataclasses

    from vaegan.data import load_dataset
    from vaegan.viz.grid import figure_image
    from vaegan.viz.latent_map import latent_map_figure

    shapes = load_dataset("shapes10", "test").head(60)
    with_coarse = dataclasses.replace(shapes, coarse_labels=shapes.labels // 5,
                                      coarse_class_names=["first five", "last five"])
    model = build_model(ModelConfig(name="vae", channels=8, latent_dim=4), num_classes=10)
    figure, result = latent_map_figure(model, with_coarse, 60, "pca", torch.device("cpu"))
    assert set(result) == {"knn_accuracy", "knn_accuracy_superclass", "images"}
    assert figure_image(figure).size[0] > 600


def test_row_labels_of_any_text_are_drawn_on_one_line_and_long_ones_cut(tmp_path):
    grid = make_grid(torch.zeros(4, 3, 8, 8, dtype=torch.uint8), ncol=2)

    def drawn(*labels):
        return np.asarray(Image.open(save_png(grid, tmp_path / "g.png", row_labels=list(labels))))

    assert np.array_equal(drawn("ca\nt", "do\tg"), drawn("ca t", "do g"))  # control characters shown as spaces
    assert np.array_equal(drawn("\r\x00\x1b[1m\u2028", "x"), drawn("   [1m ", "x"))
    long = drawn("a" * 1000, "b")
    assert np.array_equal(long, drawn("a" * 29 + "...", "b")) and long.shape[1] < 300


def test_a_run_on_a_folder_whose_class_name_holds_a_newline_finishes(tmp_path, monkeypatch, image_folder):
    monkeypatch.setenv("VAEGAN_CACHE", str(tmp_path / "cache"))
    root = tmp_path / "photos"
    image_folder(root, classes=("ca\nt", "dog"), per_class=8)
    run = tmp_path / "run"
    assert main(["train", "--preset", "cvaegan-cifar100", "--run-dir", str(run), "data.name=folder",
                 f"data.dir={root}", "model.channels=8", "model.d_channels=8", "model.latent_dim=8",
                 "model.embed_dim=4", "train.batch_size=8", "train.max_steps=2", "train.eval_images=8",
                 "train.device=cpu"]) == 0
    assert (run / "summary.json").is_file()
