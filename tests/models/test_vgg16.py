"""VGG16 in torchvision's layout, checked against the public definition without the weights file."""

import torch

from vaegan.models.vgg16 import LPIPS_LAYERS, VGG16Features, file_layout

# torchvision.models.vgg16's state dict as its source defines it (cfg "D", classifier 25088 -> 4096 -> 4096 ->
# 1000): conv index in `features` -> (in, out) channels.
CONVS = {0: (3, 64), 2: (64, 64), 5: (64, 128), 7: (128, 128), 10: (128, 256), 12: (256, 256), 14: (256, 256),
         17: (256, 512), 19: (512, 512), 21: (512, 512), 24: (512, 512), 26: (512, 512), 28: (512, 512)}
PUBLIC_LAYOUT = {**{f"features.{i}.weight": (c_out, c_in, 3, 3) for i, (c_in, c_out) in CONVS.items()},
                 **{f"features.{i}.bias": (c_out,) for i, (_, c_out) in CONVS.items()},
                 "classifier.0.weight": (4096, 25088), "classifier.0.bias": (4096,),
                 "classifier.3.weight": (4096, 4096), "classifier.3.bias": (4096,),
                 "classifier.6.weight": (1000, 4096), "classifier.6.bias": (1000,)}
VGG16_PARAMETERS = 138_357_544  # torchvision's documented count


def test_the_file_layout_is_torchvisions_key_for_key_and_shape_for_shape():
    layout = file_layout()
    assert layout == PUBLIC_LAYOUT
    assert sum(torch.Size(shape).numel() for shape in layout.values()) == VGG16_PARAMETERS


def test_the_compared_layers_are_the_relus_lpips_uses_at_their_resolutions():
    network = VGG16Features()
    assert all(isinstance(network.features[i], torch.nn.ReLU) for i in LPIPS_LAYERS)
    outputs = network.layers(torch.zeros(2, 3, 32, 32))
    assert [tuple(o.shape[1:]) for o in outputs] == [(64, 32, 32), (128, 16, 16), (256, 8, 8), (512, 4, 4),
                                                     (512, 2, 2)]


def test_inputs_in_minus_one_to_one_are_normalised_with_imagenet_statistics():
    network = VGG16Features()
    network.features[0].weight.data.zero_()
    network.features[0].bias.data.zero_()
    for channel in range(3):
        network.features[0].weight.data[channel, channel, 1, 1] = 1.0
    grey = torch.zeros(1, 3, 32, 32)  # 0.5 on [0, 1]
    first = network.features[1](network.features[0](((grey + 1) / 2 - network.mean) / network.std))
    expected = ((0.5 - torch.tensor([0.485, 0.456, 0.406])) / torch.tensor([0.229, 0.224, 0.225])).clamp_min(0)
    assert torch.allclose(first[0, :3, 16, 16], expected)
