import pytest
import torch

from vaegan.evaluation.interpolation import path, slerp, step_ratios


def test_paths_start_and_end_at_the_endpoints():
    a, b = torch.tensor([1.0, 0.0, 2.0]), torch.tensor([-1.0, 3.0, 0.5])
    for mode in ("linear", "slerp"):
        p = path(a, b, 7, mode)
        assert p.shape == (7, 3)
        assert torch.allclose(p[0], a, atol=1e-6) and torch.allclose(p[-1], b, atol=1e-6)


def test_linear_path_is_evenly_spaced():
    p = path(torch.zeros(2), torch.tensor([3.0, 6.0]), 4)
    assert torch.allclose(p, torch.tensor([[0.0, 0.0], [1.0, 2.0], [2.0, 4.0], [3.0, 6.0]]))


def test_slerp_moves_along_the_great_circle_with_interpolated_norm():
    a, b = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 2.0])
    mid = slerp(a, b, 0.5)
    assert torch.allclose(mid.norm(), torch.tensor(1.5))
    assert torch.allclose(mid / mid.norm(), torch.tensor([1.0, 1.0]) / 2**0.5, atol=1e-6)


def test_slerp_of_parallel_vectors_falls_back_to_linear():
    a = torch.tensor([1.0, 1.0])
    assert torch.allclose(slerp(a, 3 * a, 0.5), 2 * a)
    assert torch.isfinite(slerp(a, a, 0.3)).all()


def test_unknown_mode():
    with pytest.raises(ValueError, match="slerp"):
        path(torch.zeros(2), torch.ones(2), 3, "cubic")


def test_step_ratios_are_one_for_an_even_path_and_near_k_for_one_jump():
    steps = 10
    even = torch.linspace(0, 1, steps)[:, None, None, None].expand(steps, 3, 2, 2)
    jump = torch.cat([torch.zeros(5, 3, 2, 2), torch.ones(5, 3, 2, 2)])
    ends = torch.zeros(1, 3, 2, 2)
    rows = torch.cat([ends, even, ends, ends, jump, ends])  # two pairs laid out as interpolation_rows does
    ratios = step_ratios(rows, steps)
    assert torch.allclose(ratios, torch.tensor([1.0, 9.0]), atol=1e-5)
