"""A second set of BatchNorm running statistics in the generator, for decoding encodings.

A VAE-GAN's generator runs in training mode on two kinds of input: encodings (the reconstructions) and prior
noise (the samples of the adversarial passes). Each pass normalises with its own batch's statistics, but
BatchNorm keeps one set of running statistics, which then averages both kinds: in eval mode a reconstruction is
normalised partly with the prior samples' statistics and a sample partly with the encodings'
(docs/quality.md measured it: most of the plus recipes' test-MSE gap). `model.split_bn_stats` gives each of
G's BatchNorm layers a second set, `reconstruction_running_mean` and the like: decoding encodings
(`GenerativeModel.decode`) moves and reads that set, decoding prior noise the layer's own.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from torch import nn

STATISTICS = ("running_mean", "running_var", "num_batches_tracked")
PREFIX = "reconstruction_"


def _layers(decoder: nn.Module, with_second_set: bool) -> list[nn.modules.batchnorm._BatchNorm]:
    return [layer for layer in decoder.modules() if isinstance(layer, nn.modules.batchnorm._BatchNorm)
            and hasattr(layer, PREFIX + STATISTICS[0]) == with_second_set]


def add_reconstruction_statistics(decoder: nn.Module) -> None:
    """Give every BatchNorm layer of `decoder` the second set, a copy of its own (fresh: mean 0, variance 1)."""
    layers = _layers(decoder, with_second_set=False)
    if not layers or any(not layer.track_running_stats for layer in layers):
        raise ValueError("a second set of running statistics needs BatchNorm layers that keep running statistics")
    for layer in layers:
        for name in STATISTICS:
            layer.register_buffer(PREFIX + name, getattr(layer, name).clone())


def _swap(layers: list[nn.modules.batchnorm._BatchNorm]) -> None:
    """Exchange the two sets in the layers' buffer tables: it runs on every reconstruction pass, where
    `Module.__setattr__`'s checks cost several times the walk over the decoder."""
    for layer in layers:
        buffers = layer._buffers
        for name in STATISTICS:
            buffers[name], buffers[PREFIX + name] = buffers[PREFIX + name], buffers[name]


@contextmanager
def reconstruction_statistics(decoder: nn.Module) -> Iterator[None]:
    """Within the block, `decoder`'s BatchNorm layers read (eval mode) and move (training mode) their second
    set of running statistics; a decoder without one is unchanged. The sets trade places, nothing is copied."""
    layers = _layers(decoder, with_second_set=True)
    _swap(layers)
    try:
        yield
    finally:
        _swap(layers)
