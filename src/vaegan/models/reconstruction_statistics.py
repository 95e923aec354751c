"""A second set of BatchNorm running statistics in the generator, for decoding encodings.

A VAE-GAN's generator runs in training mode on two kinds of input: encodings (the reconstructions) and prior
noise (the samples of the adversarial passes). Each pass normalises with its own batch's statistics, but
BatchNorm keeps one set of running statistics, which then averages both kinds: in eval mode a reconstruction is
normalised partly with the prior samples' statistics and a sample partly with the encodings'
(docs/quality.md measured it: most of the plus recipes' test-MSE gap). `model.split_bn_stats` gives each of
G's BatchNorm layers a second set, `reconstruction_running_mean` and the like: decoding encodings
(`GenerativeModel.decode`) moves and reads that set, decoding prior noise the layer's own. With
`model.sample_bn_stats=all` the layer's own set is moved by the reconstruction pass too, so samples read the
statistics of every pass, as without the split, and only reconstructions get statistics of their own.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

STATISTICS = ("running_mean", "running_var", "num_batches_tracked")
MOVING = STATISTICS[:2]  # the statistics a pass moves by the momentum rule (the count goes up by one)
PREFIX = "reconstruction_"
EVERY_PASS = "own_statistics_of_every_pass"  # a layer attribute: the reconstruction pass moves the own set too


def _layers(decoder: nn.Module, with_second_set: bool) -> list[nn.modules.batchnorm._BatchNorm]:
    return [layer for layer in decoder.modules() if isinstance(layer, nn.modules.batchnorm._BatchNorm)
            and hasattr(layer, PREFIX + STATISTICS[0]) == with_second_set]


def add_reconstruction_statistics(decoder: nn.Module, own_set_of_every_pass: bool = False) -> None:
    """Give every BatchNorm layer of `decoder` the second set, a copy of its own (fresh: mean 0, variance 1).
    `own_set_of_every_pass`: the layer's own set keeps averaging every pass (needs a fixed momentum)."""
    layers = _layers(decoder, with_second_set=False)
    if not layers or any(not layer.track_running_stats for layer in layers):
        raise ValueError("a second set of running statistics needs BatchNorm layers that keep running statistics")
    if own_set_of_every_pass and any(layer.momentum is None for layer in layers):
        raise ValueError("own statistics of every pass need BatchNorm layers with a momentum")
    for layer in layers:
        for name in STATISTICS:
            layer.register_buffer(PREFIX + name, getattr(layer, name).clone())
        setattr(layer, EVERY_PASS, own_set_of_every_pass)


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
    set of running statistics; a decoder without one is unchanged. The sets trade places, nothing is copied;
    where the own set is of every pass, it then takes the update the pass gave the second set."""
    layers = _layers(decoder, with_second_set=True)
    shared = [layer for layer in layers if layer.training and getattr(layer, EVERY_PASS)]  # the ones to move
    gaps = [_gaps(layer) for layer in shared]
    _swap(layers)
    try:
        yield
    finally:
        _swap(layers)
    for layer, gap in zip(shared, gaps):
        _move_own_set_as_the_second_moved(layer, gap)


def _gaps(layer: nn.modules.batchnorm._BatchNorm) -> list[torch.Tensor]:
    """own - second, per moving statistic, before the pass."""
    return [getattr(layer, name) - getattr(layer, PREFIX + name) for name in MOVING]


@torch.no_grad()
def _move_own_set_as_the_second_moved(layer: nn.modules.batchnorm._BatchNorm, gaps: list[torch.Tensor]) -> None:
    """Apply to the own set the update a training-mode pass gave the second set. The update, new = (1 - m) old +
    m batch, is read off the second set's move, so it holds however the layer computed it (a member of a fused
    group included): own_new = second_new + (1 - m) (own_old - second_old)."""
    for name, gap in zip(MOVING, gaps):
        getattr(layer, name).copy_(getattr(layer, PREFIX + name)).add_(gap, alpha=1.0 - layer.momentum)
    layer.num_batches_tracked.add_(1)
