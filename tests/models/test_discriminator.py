import pytest
import torch

from vaegan.models.discriminator import ConvDiscriminatorFeatures, ProjectionDiscriminator
from vaegan.models.resnet import ResNetDiscriminatorFeatures


@pytest.mark.parametrize("features", [ConvDiscriminatorFeatures(8), ResNetDiscriminatorFeatures(8)])
def test_projection_equals_psi_of_phi_plus_the_class_inner_product(features):
    torch.manual_seed(0)
    d = ProjectionDiscriminator(features, num_classes=5).eval()
    x, y = torch.randn(4, 3, 32, 32), torch.tensor([0, 3, 4, 3])
    with torch.no_grad():
        logits = d(x, y)
        phi = features(x)[-1].sum(dim=(2, 3))  # global sum pooling
        psi = phi @ d.psi.weight.T + d.psi.bias
        projection = (d.embed.weight[y] * phi).sum(dim=1)
    assert torch.allclose(logits, psi.squeeze(1) + projection, atol=1e-5)


def test_unconditional_discriminator_has_no_embedding():
    d = ProjectionDiscriminator(ConvDiscriminatorFeatures(8), num_classes=0)
    assert d.embed is None and d(torch.randn(2, 3, 32, 32)).shape == (2,)


def test_spectral_norm_keeps_the_top_singular_value_near_one_after_updates():
    torch.manual_seed(0)
    d = ProjectionDiscriminator(ConvDiscriminatorFeatures(8), num_classes=3)
    opt = torch.optim.Adam(d.parameters(), lr=1e-2)
    for _ in range(5):  # each training forward refines the power-iteration estimate
        loss = d(torch.randn(8, 3, 32, 32), torch.randint(0, 3, (8,))).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    for _ in range(20):
        d(torch.randn(2, 3, 32, 32), torch.randint(0, 3, (2,)))
    d.eval()
    for name, module in d.named_modules():
        if hasattr(module, "parametrizations"):
            weight = module.weight.detach().flatten(1)
            sigma = torch.linalg.matrix_norm(weight, ord=2).item()
            assert sigma == pytest.approx(1.0, abs=0.05), name
