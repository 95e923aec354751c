"""Test-set reconstruction metrics, also when several processes each measure a share of the split."""

import pytest
import torch

from vaegan.config import ModelConfig
from vaegan.data import make_shapes10, sequential_batches
from vaegan.evaluation.reconstruction import evaluate_reconstruction
from vaegan.models import build_model


def test_shares_whose_sums_are_added_give_the_metrics_of_the_whole_split():
    torch.manual_seed(0)
    model = build_model(ModelConfig(name="vae", channels=8, latent_dim=8), num_classes=10)
    data = make_shapes10("test", test_size=37)
    whole = evaluate_reconstruction(model, sequential_batches(data, "cpu", batch_size=8), beta=2.0)
    shares = [data.shard(rank, 3) for rank in range(3)]
    sums = [None] * 3
    for rank, share in enumerate(shares):  # what each rank would contribute to the all-reduce
        evaluate_reconstruction(model, sequential_batches(share, "cpu", batch_size=8), 2.0,
                                combine_sums=lambda s, rank=rank: sums.__setitem__(rank, s.clone()) or s)
    combined = evaluate_reconstruction(model, sequential_batches(shares[0], "cpu", batch_size=8), 2.0,
                                       combine_sums=lambda s: sum(sums))
    assert combined["images"] == whole["images"] == 37
    for name, value in whole.items():
        assert combined[name] == pytest.approx(value, rel=1e-6), name


def test_a_rank_with_no_images_contributes_zero_sums():
    model = build_model(ModelConfig(name="vae", channels=8, latent_dim=8), num_classes=10)
    empty = make_shapes10("test", test_size=3).shard(0, 4)
    seen = []
    with pytest.raises(ValueError, match="no images"):
        evaluate_reconstruction(model, sequential_batches(empty, "cpu"), 1.0, combine_sums=lambda s: seen.append(s) or s)
    assert seen[0].tolist() == [0.0] * 5 and seen[0].dtype == torch.float64
