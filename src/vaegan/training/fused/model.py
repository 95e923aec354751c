"""K models of one architecture as one module with a member dimension.

Activations are member-major: a fused batch is [K*B, ...] with member k's rows at k*B..(k+1)*B-1, so every
row-wise operation of the models (activations, pooling, flatten, view, concatenation of features, sums over
pixels) runs unchanged, and only layers with weights or noise are replaced. Parameters and buffers are the
members' tensors stacked along a new first dimension under the same names, so a member's state_dict is one
index away (`member_state`) and spectral norm keeps its `parametrizations.weight.original/_u/_v` keys.
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

    def get(self) -> torch.Tensor:
        if self.device.type == "cuda":
            return torch.cuda.get_rng_state(self.device)
        if self.device.type == "mps":
            return torch.mps.get_rng_state()
        return torch.get_rng_state()

    def set(self, state: torch.Tensor) -> None:
        if self.device.type == "cuda":
            torch.cuda.set_rng_state(state, self.device)
        elif self.device.type == "mps":
            torch.mps.set_rng_state(state)
        else:
            torch.set_rng_state(state)

    def draw(self, member: int, fn, *args):
        """fn(*args) drawing from `member`'s stream."""
        outer = self.get()
        self.set(self.states[member])
        try:
            return fn(*args)
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
    another): member k's own layer on its rows, drawing from its own stream. `channels_last`: the memory
    format the runs alone had, since dropout draws its mask in memory order."""

    def __init__(self, layers: list[nn.Module], random: MemberRandom, channels_last: bool):
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.random = random
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        chunks = [rows.contiguous(memory_format=self.memory_format) if rows.dim() == 4 else rows
                  for rows in x.chunk(len(self.layers))]
        return torch.cat([self.random.draw(k, layer, rows) for k, (layer, rows) in enumerate(zip(self.layers, chunks))])


class MemberSpectralNorm(nn.Module):
    """torch's spectral_norm parametrization (dim 0, one power iteration per training forward) per member."""

    def __init__(self, template: nn.Module, members: int):
        super().__init__()
        self.eps = template.eps
        self.register_buffer("_u", template._u.new_empty(members, *template._u.shape))
        self.register_buffer("_v", template._v.new_empty(members, *template._v.shape))

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        matrix = weight.flatten(2)  # [K, out, in...]
        if self.training:
            with torch.no_grad():
                self._v.copy_(F.normalize(torch.bmm(matrix.transpose(1, 2), self._u.unsqueeze(2)).squeeze(2),
                                          dim=1, eps=self.eps))
                self._u.copy_(F.normalize(torch.bmm(matrix, self._v.unsqueeze(2)).squeeze(2), dim=1, eps=self.eps))
        u, v = self._u.clone(), self._v.clone()
        sigma = (u * torch.bmm(matrix, v.unsqueeze(2)).squeeze(2)).sum(dim=1)
        return weight / sigma.view(-1, *(1,) * (weight.dim() - 1))


class _MemberLayer(nn.Module):
    """A layer whose parameters gain a member dimension; the values come from `load_state_dict` (stacked)."""

    def __init__(self, template: nn.Module, members: int):
        super().__init__()
        self.members = members
        sn = parametrize.is_parametrized(template, "weight")
        weight = template.parametrizations.weight.original if sn else template.weight
        self.weight = nn.Parameter(weight.detach().new_empty(members, *weight.shape))
        bias = getattr(template, "bias", None)
        self.bias = None if bias is None else nn.Parameter(bias.detach().new_empty(members, *bias.shape))
        if sn:
            parametrization = template.parametrizations.weight[0]
            if parametrization.dim != 0:
                raise ValueError(f"spectral norm over dim {parametrization.dim} is not fused")
            parametrize.register_parametrization(self, "weight", MemberSpectralNorm(parametrization, members),
                                                 unsafe=True)


class MemberConv2d(_MemberLayer):
    def __init__(self, template: nn.Conv2d, members: int):
        super().__init__(template, members)
        if template.padding_mode != "zeros":
            raise ValueError("only zero-padded convolutions are fused")
        self.stride, self.padding, self.dilation = template.stride, template.padding, template.dilation
        self.groups = template.groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = self.members
        out = F.conv2d(_to_groups(x, k), self.weight.flatten(0, 1), None if self.bias is None else self.bias.flatten(),
                       self.stride, self.padding, self.dilation, k * self.groups)
        return _from_groups(out, k)


class MemberConvTranspose2d(_MemberLayer):
    def __init__(self, template: nn.ConvTranspose2d, members: int):
        super().__init__(template, members)
        self.stride, self.padding, self.dilation = template.stride, template.padding, template.dilation
        self.output_padding, self.groups = template.output_padding, template.groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = self.members
        out = F.conv_transpose2d(_to_groups(x, k), self.weight.flatten(0, 1),
                                 None if self.bias is None else self.bias.flatten(), self.stride, self.padding,
                                 self.output_padding, k * self.groups, self.dilation)
        return _from_groups(out, k)


class MemberLinear(_MemberLayer):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.reshape(self.members, -1, x.shape[-1])
        weight = self.weight.transpose(1, 2)
        out = torch.bmm(x, weight) if self.bias is None else torch.baddbmm(self.bias.unsqueeze(1), x, weight)
        return out.reshape(-1, out.shape[-1])


class MemberEmbedding(_MemberLayer):
    def __init__(self, template: nn.Embedding, members: int):
        super().__init__(template, members)
        if template.padding_idx is not None or template.max_norm is not None:
            raise ValueError("embeddings with padding_idx or max_norm are not fused")

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        if y.is_floating_point():
            raise ValueError("a fused model takes integer labels only")
        weight = self.weight  # computed once (spectral norm)
        classes = weight.shape[1]
        offsets = torch.arange(self.members, device=y.device).repeat_interleave(len(y) // self.members) * classes
        return F.embedding(y + offsets, weight.flatten(0, 1))


class MemberBatchNorm2d(nn.Module):
    def __init__(self, template: nn.BatchNorm2d, members: int):
        super().__init__()
        if not (template.affine and template.track_running_stats and template.momentum is not None):
            raise ValueError("only affine BatchNorm with running statistics and a momentum is fused")
        self.members, self.momentum, self.eps = members, template.momentum, template.eps
        channels = template.num_features
        self.weight = nn.Parameter(torch.empty(members, channels))
        self.bias = nn.Parameter(torch.empty(members, channels))
        self.register_buffer("running_mean", torch.empty(members, channels))
        self.register_buffer("running_var", torch.empty(members, channels))
        self.register_buffer("num_batches_tracked", torch.zeros(members, dtype=torch.long))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            self.num_batches_tracked.add_(1)
        out = F.batch_norm(_to_groups(x, self.members), self.running_mean.view(-1), self.running_var.view(-1),
                           self.weight.flatten(), self.bias.flatten(), self.training, self.momentum, self.eps)
        return _from_groups(out, self.members)


MEMBER_LAYERS = ((nn.Conv2d, MemberConv2d), (nn.ConvTranspose2d, MemberConvTranspose2d), (nn.Linear, MemberLinear),
                 (nn.Embedding, MemberEmbedding), (nn.BatchNorm2d, MemberBatchNorm2d))


def _fuse_children(fused: nn.Module, members: list[nn.Module], random: MemberRandom, channels_last: bool) -> None:
    """Replace, in place, every child of `fused` (a copy of members[0]) by its fused counterpart."""
    for name, child in list(fused.named_children()):
        layers = [getattr(member, name) for member in members]
        noisy = any(isinstance(layer, nn.Dropout) for layer in layers)
        kind = parametrize.type_before_parametrizations(child)
        if noisy or any(parametrize.type_before_parametrizations(layer) is not kind for layer in layers):
            if not noisy or any(next(layer.parameters(), None) is not None for layer in layers):
                raise ValueError(f"the members' {name} layers differ in kind, not only in values")
            setattr(fused, name, MemberLayers(layers, random, channels_last))
            continue
        replacement = next((fused_type for kind, fused_type in MEMBER_LAYERS if isinstance(child, kind)), None)
        if replacement is not None:
            setattr(fused, name, replacement(child, len(members)))
        elif any(True for _ in child.parameters(recurse=False)) or any(True for _ in child.buffers(recurse=False)):
            raise ValueError(f"{type(child).__name__} layers are not fused")
        else:
            _fuse_children(child, layers, random, channels_last)


def stack_states(states: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """The members' state_dicts as one, each tensor stacked along a new first dimension."""
    keys = list(states[0])
    if any(list(state) != keys for state in states):
        raise ValueError("the members' states have different keys")
    return {key: torch.stack([state[key] for state in states]) for key in keys}


def member_state(state: dict[str, torch.Tensor], member: int) -> dict[str, torch.Tensor]:
    """Member `member`'s state_dict out of a fused one: what its run alone would hold."""
    return {key: value[member].clone() for key, value in state.items()}


def fuse_models(models: list[GenerativeModel], random: MemberRandom, channels_last: bool = False
                ) -> GenerativeModel:
    """One model that computes all `models` at once on member-major batches; raises ValueError where their
    architectures differ in more than values (then they cannot share tensors). `channels_last`: the memory
    format the models had alone (their dropout masks depend on it)."""
    fused = copy.deepcopy(models[0])
    _fuse_children(fused, models, random, channels_last)
    fused.noise = random.normal
    fused.load_state_dict(stack_states([model.state_dict() for model in models]))
    return fused
