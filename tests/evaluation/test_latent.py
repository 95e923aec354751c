import pytest
import torch

from vaegan.errors import VaeganError
from vaegan.evaluation.latent import knn_accuracy, map_2d


def test_knn_accuracy_on_separated_and_on_mixed_clusters():
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(3).repeat_interleave(20)
    centres = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    separated = centres[labels] + 0.1 * torch.randn(60, 2, generator=g)
    assert knn_accuracy(separated, labels) == 1.0
    assert knn_accuracy(torch.randn(60, 2, generator=g), labels) < 0.7


def test_knn_leaves_each_point_out_and_breaks_ties_toward_the_nearest():
    features = torch.tensor([[0.0], [1.0], [3.0], [10.0]])
    labels = torch.tensor([0, 1, 0, 1])
    # point 0's two neighbours are 1 (class 1, nearer) and 2 (class 0): a tie, so class 1 wins -> wrong
    # point 1: 0 (class 0) and 2 (class 0) -> 0, wrong; point 2: 1 (class 1) and 0 (class 0) -> 1, wrong
    # point 3: 2 (class 0) and 1 (class 1) -> 0, wrong
    assert knn_accuracy(features, labels, k=2) == 0.0
    with pytest.raises(VaeganError, match="needs more than"):
        knn_accuracy(features, labels, k=4)


@pytest.mark.parametrize("method", ["pca", "tsne"])
def test_maps_are_two_dimensional_and_pca_keeps_the_main_direction(method):
    g = torch.Generator().manual_seed(1)
    features = torch.randn(40, 5, generator=g) * torch.tensor([10.0, 1.0, 0.1, 0.1, 0.1])
    points = map_2d(features, method)
    assert points.shape == (40, 2)
    if method == "pca":
        assert abs(torch.corrcoef(torch.stack([torch.from_numpy(points[:, 0]), features[:, 0].double()]))[0, 1]) > 0.99
