import torch
from PIL import Image

from vaegan.viz import make_grid, reconstruction_grid, save_png, to_uint8


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
