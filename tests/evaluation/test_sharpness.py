"""The Laplacian energy that `evaluate`'s sharp metric compares between generated and real images."""

import torch
import torch.nn.functional as F

from vaegan.data import make_shapes10
from vaegan.evaluation.sharpness import laplacian_energy


def test_flat_images_have_no_energy_and_blurring_removes_most_of_it():
    assert laplacian_energy(torch.full((2, 3, 32, 32), 0.3)).abs().max() < 1e-10
    real = make_shapes10("test", test_size=16).images.float() / 127.5 - 1
    blurred = F.avg_pool2d(real, 3, stride=1, padding=1, count_include_pad=False)
    sharp, soft = laplacian_energy(real), laplacian_energy(blurred)
    assert sharp.shape == (16,) and (sharp > 0).all()
    assert (soft < 0.5 * sharp).all()


def test_a_checkerboard_in_luma_has_the_energy_worked_out_by_hand():
    board = (torch.arange(32)[:, None] + torch.arange(32)[None, :]) % 2  # 0/1 in [0, 1]
    images = (board.float() * 2 - 1).expand(1, 3, 32, 32)  # grey levels: luma = board
    # each interior pixel: 4 neighbours of the other colour, so the Laplacian is +-4 everywhere
    assert torch.allclose(laplacian_energy(images), torch.tensor([16.0]))
