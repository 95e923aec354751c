"""The FID Inception network's architecture and weights handling, without the real weights file."""

import json
from pathlib import Path

import pytest
import torch

from vaegan.errors import VaeganError
from vaegan.evaluation import inception as inc

LAYOUT = json.loads((Path(__file__).parent / "fid_inception_layout.json").read_text())
# torchvision's Inception-v3 has 27,161,264 parameters with its auxiliary head (3,326,696 of them) and 1000
# classes; the FID graph drops the head and has 1008 classes (+8 * 2049).
FID_INCEPTION_PARAMETERS = 27_161_264 - 3_326_696 + 8 * 2049


@pytest.fixture(scope="module")
def network():
    torch.manual_seed(0)
    return inc.FIDInceptionV3().eval()


def test_state_dict_has_the_published_layout(network):
    assert {k: list(v.shape) for k, v in network.state_dict().items()} == LAYOUT
    assert sum(p.numel() for p in network.parameters()) == FID_INCEPTION_PARAMETERS
    assert LAYOUT["Conv2d_1a_3x3.conv.weight"] == [32, 3, 3, 3] and LAYOUT["fc.weight"] == [1008, 2048]
    assert not any(k.startswith("AuxLogits") for k in LAYOUT)


def test_cifar_batches_map_to_pool_features_and_logits(network):
    with torch.inference_mode():
        pool, logits = network(torch.rand(2, 3, 32, 32) * 2 - 1)
    assert pool.shape == (2, 2048) and logits.shape == (2, 1008)
    assert (pool >= 0).all()  # the average of ReLU outputs


def test_the_last_block_max_pools_and_the_others_ignore_padding_in_their_average(network):
    assert network.Mixed_7c.max_pool and not network.Mixed_7b.max_pool
    pooled = inc._avg_pool(torch.ones(1, 1, 3, 3))
    assert torch.equal(pooled, torch.ones(1, 1, 3, 3))  # count_include_pad=False: corners stay 1


def test_weights_load_from_a_file_with_weights_only(tmp_path, network):
    path = tmp_path / inc.INCEPTION_WEIGHTS.name
    state = {k: v for k, v in network.state_dict().items() if not k.endswith("num_batches_tracked")}
    torch.save(state, path)  # as the published file, which predates BatchNorm's batch counter
    loaded = inc.load_fid_inception(path)
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in state.items())
    torch.save({"something": torch.zeros(2)}, tmp_path / "other.pth")
    with pytest.raises(VaeganError, match="is not the FID Inception weights file"):
        inc.load_fid_inception(tmp_path / "other.pth")
