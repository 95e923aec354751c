"""K models of one architecture computed as one: grouped layers over the members' own layers (for GPUs).

Activations are member-major: a fused batch is [K*B, ...] with member k's rows at k*B..(k+1)*B-1, so every
row-wise operation of the models (activations, pooling, flatten, view, concatenation of features, sums over
pixels) runs unchanged, and only layers with weights or noise are replaced. The replacements own nothing: they
stack the members' own parameters in each forward (so gradients reach each member's parameters, which its own
optimiser updates) and write BatchNorm statistics and spectral-norm vectors back into each member's buffers.
A member's model, optimiser and EMA therefore stay exactly its run's own, checkpointed as a run alone would be.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize

from vaegan.models import GenerativeModel
from vaegan.models.generative import standard_normal


def _to_groups(x: torch.Tensor, members: int) -> torch.Tensor:
    """[K*B, C, ...] -> [B, K*C, ...]: each member's channels side by side, as grouped layers take them."""
    rows, channels, *rest = x.shape
    return x.reshape(members, rows // members, channels, *rest).transpose(0, 1).reshape(
        rows // members, members * channels, *rest)


def _from_groups(x: torch.Tensor, members: int) -> torch.Tensor:
    """[B, K*C, ...] -> [K*B, C, ...]."""
    rows, channels, *rest = x.shape
    return x.reshape(rows, members, channels // members, *rest).transpose(0, 1).reshape(
        members * rows, channels // members, *rest)


class MemberRandom:
    """Each member's own stream of the device's global generator, swapped in while that member draws, so a
    member's dropout masks and Gaussian noise are the ones its run would draw alone."""

    def __init__(self, device: torch.device, states: list[torch.Tensor]):
        self.device, self.states = device, states

    @staticmethod
    def current(device: torch.device) -> torch.Tensor:
        """The state of `device`'s global generator now."""
        if device.type == "cuda":
            return torch.cuda.get_rng_state(device)
        if device.type == "mps":
            return torch.mps.get_rng_state()
        return torch.get_rng_state()

    def get(self) -> torch.Tensor:
        return self.current(self.device)

    def set(self, state: torch.Tensor) -> None:
        if self.device.type == "cuda":
            torch.cuda.set_rng_state(state, self.device)
        elif self.device.type == "mps":
            torch.mps.set_rng_state(state)
        else:
            torch.set_rng_state(state)

    def draw(self, member: int, fn, *args, **kwargs):
        """fn(*args, **kwargs) drawing from `member`'s stream."""
        outer = self.get()
        self.set(self.states[member])
        try:
            return fn(*args, **kwargs)
        finally:
            self.states[member] = self.get()
            self.set(outer)

    def normal(self, shape: tuple[int, ...], like: torch.Tensor) -> torch.Tensor:
        """The fused model's `noise`: member k's rows from member k's stream."""
        members = len(self.states)
        rows = (shape[0] // members, *shape[1:])
        return torch.cat([self.draw(k, standard_normal, rows, like) for k in range(members)])


class MemberLayers(nn.Module):
    """Layers without weights that draw noise (dropout) or differ between members (dropout in one, none in
    another): member k's own layer on its rows, in its run's memory format (dropout draws its mask in memory
    order), drawing from its own stream."""

    def __init__(self, layers: list[nn.Module], random: MemberRandom, channels_last: bool):
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.random = random
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        parts = [rows.contiguous(memory_format=self.memory_format) if rows.dim() == 4 else rows
                 for rows in x.chunk(len(self.layers))]
        return torch.cat([self.random.draw(k, layer, rows) for k, (layer, rows) in enumerate(zip(self.layers, parts))])


class _GroupedLayer(nn.Module):
    """The members' layers of one kind as one; `weight()` stacks their weights (spectrally normalised where
    they are, with one batched power iteration whose vectors go back to each member)."""

    def __init__(self, layers: list[nn.Module]):
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.members = len(layers)
        self.spectral = parametrize.is_parametrized(layers[0], "weight")
        if self.spectral and layers[0].parametrizations.weight[0].dim != 0:
            raise ValueError("spectral norm over a dimension other than 0 is not fused")

    def weight(self) -> torch.Tensor:
        if not self.spectral:
            return torch.stack([layer.weight for layer in self.layers])
        norms = [layer.parametrizations.weight[0] for layer in self.layers]
        weight = torch.stack([layer.parametrizations.weight.original for layer in self.layers])
        matrix = weight.flatten(2)  # [K, out, in...], as torch's spectral_norm flattens dim 0's complement
        u, v = torch.stack([n._u for n in norms]), torch.stack([n._v for n in norms])
        if self.training:  # one power iteration, as spectral_norm does in each training forward
            with torch.no_grad():
                v = F.normalize(torch.bmm(matrix.transpose(1, 2), u.unsqueeze(2)).squeeze(2), dim=1, eps=norms[0].eps)
                u = F.normalize(torch.bmm(matrix, v.unsqueeze(2)).squeeze(2), dim=1, eps=norms[0].eps)
                torch._foreach_copy_([n._u for n in norms], list(u.unbind(0)))
                torch._foreach_copy_([n._v for n in norms], list(v.unbind(0)))
        sigma = (u * torch.bmm(matrix, v.unsqueeze(2)).squeeze(2)).sum(dim=1)
        return weight / sigma.view(-1, *(1,) * (weight.dim() - 1))

    def bias(self) -> torch.Tensor | None:
        if self.layers[0].bias is None:
            return None
        return torch.stack([layer.bias for layer in self.layers])


class GroupedConv(_GroupedLayer):
    """Conv2d or ConvTranspose2d of K members as one grouped convolution."""

    def __init__(self, layers: list[nn.Module]):
        super().__init__(layers)
        first = layers[0]
        if first.padding_mode != "zeros":
            raise ValueError("only zero-padded convolutions are fused")
        self.transposed = isinstance(first, nn.ConvTranspose2d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        first, k = self.layers[0], self.members
        bias = self.bias()
        bias = None if bias is None else bias.flatten()
        weight = self.weight().flatten(0, 1)
        if self.transposed:
            out = F.conv_transpose2d(_to_groups(x, k), weight, bias, first.stride, first.padding,
                                     first.output_padding, k * first.groups, first.dilation)
        else:
            out = F.conv2d(_to_groups(x, k), weight, bias, first.stride, first.padding, first.dilation,
                           k * first.groups)
        return _from_groups(out, k)


class GroupedLinear(_GroupedLayer):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.reshape(self.members, -1, x.shape[-1])
        weight, bias = self.weight().transpose(1, 2), self.bias()
        out = torch.bmm(x, weight) if bias is None else torch.baddbmm(bias.unsqueeze(1), x, weight)
        return out.reshape(-1, out.shape[-1])


class GroupedEmbedding(_GroupedLayer):
    def __init__(self, layers: list[nn.Module]):
        super().__init__(layers)
        if layers[0].padding_idx is not None or layers[0].max_norm is not None:
            raise ValueError("embeddings with padding_idx or max_norm are not fused")

    def bias(self) -> None:
        return None

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        if y.is_floating_point():
            raise ValueError("a fused model takes integer labels only")
        weight = self.weight()
        offsets = torch.arange(self.members, device=y.device).repeat_interleave(len(y) // self.members)
        return F.embedding(y + offsets * weight.shape[1], weight.flatten(0, 1))


class GroupedBatchNorm2d(nn.Module):
    """BatchNorm2d of K members as one over K*C channels (affine or not); the running statistics go back to each
    member."""

    def __init__(self, layers: list[nn.BatchNorm2d]):
        super().__init__()
        first = layers[0]
        if not (first.track_running_stats and first.momentum is not None):
            raise ValueError("only BatchNorm with running statistics and a momentum is fused")
        self.layers = nn.ModuleList(layers)
        self.members = len(layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        first, k = self.layers[0], self.members
        means = torch.cat([layer.running_mean for layer in self.layers])
        variances = torch.cat([layer.running_var for layer in self.layers])
        weight, bias = (torch.cat([getattr(layer, name) for layer in self.layers]) if first.affine else None
                        for name in ("weight", "bias"))
        out = F.batch_norm(_to_groups(x, k), means, variances, weight, bias, self.training, first.momentum, first.eps)
        if self.training:
            torch._foreach_copy_([layer.running_mean for layer in self.layers], list(means.chunk(k)))
            torch._foreach_copy_([layer.running_var for layer in self.layers], list(variances.chunk(k)))
            torch._foreach_add_([layer.num_batches_tracked for layer in self.layers], 1)
        return _from_groups(out, k)


GROUPED = ((nn.Conv2d, GroupedConv), (nn.ConvTranspose2d, GroupedConv), (nn.Linear, GroupedLinear),
           (nn.Embedding, GroupedEmbedding), (nn.BatchNorm2d, GroupedBatchNorm2d))


def _fuse_children(fused: nn.Module, members: list[nn.Module], random: MemberRandom, channels_last: bool) -> None:
    """Replace, in place, every child of `fused` (a copy of members[0]'s structure) by its grouped counterpart."""
    for name, child in list(fused.named_children()):
        layers = [getattr(member, name) for member in members]
        kind = parametrize.type_before_parametrizations(child)
        noisy = any(isinstance(layer, nn.Dropout) for layer in layers)
        if noisy or any(parametrize.type_before_parametrizations(layer) is not kind for layer in layers):
            if not noisy or any(next(layer.parameters(), None) is not None for layer in layers):
                raise ValueError(f"the members' {name} layers differ in kind, not only in values")
            setattr(fused, name, MemberLayers(layers, random, channels_last))
            continue
        grouped = next((cls for base, cls in GROUPED if issubclass(kind, base)), None)
        if grouped is not None:
            setattr(fused, name, grouped(layers))
        elif next(child.parameters(recurse=False), None) is not None or next(child.buffers(recurse=False), None) \
                is not None:
            raise ValueError(f"{kind.__name__} layers are not fused")
        else:
            _fuse_children(child, layers, random, channels_last)


def fuse_models(models: list[GenerativeModel], random: MemberRandom, channels_last: bool = False
                ) -> GenerativeModel:
    """One model that computes all `models` at once on member-major batches, over their own parameters and
    buffers; raises ValueError where their architectures differ in more than values. `channels_last`: the
    memory format the models have (their dropout masks depend on it)."""
    fused = copy.deepcopy(models[0])  # the structure; every layer with state is replaced by the members' own
    _fuse_children(fused, models, random, channels_last)
    fused.noise = random.normal
    return fused
