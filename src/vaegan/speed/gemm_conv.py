"""Convolution layers whose weight gradient is one large matrix multiply, for CPUs.

On AVX2 CPUs oneDNN's weight-gradient kernels for wide layers run well below MKL's sgemm on the same numbers,
while its forward and input-gradient kernels are fine. So these layers compute dW as im2col(input) x
grad_output, a copy of the input's patches followed by a single GEMM, and leave the rest to oneDNN. It pays
together with channels_last (the CPU default) only; thin and 1x1 layers stay with oneDNN. The per-layer times
behind MIN_CHANNELS are in docs/performance.md.

The gradient is the same sum in another order (float rounding differs), and it is deterministic: runs stay
bit-for-bit reproducible and resumable. Parameters, state_dict keys and forward results are unchanged.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

MIN_CHANNELS = 64  # both in and out channels at least this (and a kernel larger than 1x1): measured faster


def _patches(x_nhwc: torch.Tensor, kernel: tuple[int, int], stride: tuple[int, int],
             padding: tuple[int, int]) -> torch.Tensor:
    """im2col: [B*Ho*Wo, kh*kw*C], each row the zero-padded kh x kw x C patch under one output position."""
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    padded = F.pad(x_nhwc, (0, 0, pw, pw, ph, ph)).contiguous()
    b, h, w, c = padded.shape
    ho, wo = (h - kh) // sh + 1, (w - kw) // sw + 1
    sb, s_h, s_w, sc = padded.stride()
    windows = padded.as_strided((b, ho, wo, kh, kw, c), (sb, sh * s_h, sw * s_w, s_h, s_w, sc))
    return windows.reshape(b * ho * wo, kh * kw * c)


def _pixel_rows(x: torch.Tensor) -> torch.Tensor:
    """[B, C, H, W] -> [B*H*W, C] (free for channels_last tensors)."""
    return x.permute(0, 2, 3, 1).reshape(-1, x.shape[1])


def weight_gradient(x: torch.Tensor, grad_out: torch.Tensor, weight_shape: torch.Size, stride: tuple[int, int],
                    padding: tuple[int, int], transposed: bool) -> torch.Tensor:
    """dL/dW of conv2d (or conv_transpose2d) with input x and output gradient grad_out; channels_last result.

    A transposed convolution is the input-gradient of an ordinary one, so its dW pairs the patches of the
    output gradient with the input pixels instead of the other way round.
    """
    kernel = tuple(weight_shape[2:])
    patch_source, row_source = (grad_out, x) if transposed else (x, grad_out)
    patches = _patches(patch_source.permute(0, 2, 3, 1), kernel, stride, padding)
    # patches^T @ rows is measured 0-13% faster than rows^T @ patches; the transpose back is a small copy
    grad = torch.mm(patches.t(), _pixel_rows(row_source)).t()
    return grad.reshape(row_source.shape[1], *kernel, patch_source.shape[1]).permute(0, 3, 1, 2)


class _Conv2dGemmWeightGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, stride, padding, transposed):
        ctx.save_for_backward(x, weight)
        ctx.stride, ctx.padding, ctx.transposed = stride, padding, transposed
        if transposed:
            return F.conv_transpose2d(x, weight, bias, stride, padding)
        return F.conv2d(x, weight, bias, stride, padding)

    @staticmethod
    def backward(ctx, grad_out):
        x, weight = ctx.saved_tensors
        needs_x, needs_w, needs_b = ctx.needs_input_grad[:3]
        grad_x = grad_w = grad_b = None
        if needs_x:
            grad_x = torch.ops.aten.convolution_backward(
                grad_out, x, weight, None, list(ctx.stride), list(ctx.padding), [1, 1], ctx.transposed, [0, 0], 1,
                [True, False, False])[0]
        if needs_w:
            grad_w = weight_gradient(x, grad_out, weight.shape, ctx.stride, ctx.padding, ctx.transposed)
        if needs_b:
            grad_b = grad_out.sum((0, 2, 3))
        return grad_x, grad_w, grad_b, None, None, None


class GemmWeightGradConv2d(nn.Conv2d):
    """nn.Conv2d whose backward computes the weight gradient with im2col + GEMM (see the module docstring)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _Conv2dGemmWeightGrad.apply(x, self.weight, self.bias, self.stride, self.padding, False)


class GemmWeightGradConvTranspose2d(nn.ConvTranspose2d):
    """nn.ConvTranspose2d whose backward computes the weight gradient with im2col + GEMM."""

    def forward(self, x: torch.Tensor, output_size: list[int] | None = None) -> torch.Tensor:
        if output_size is not None:
            raise ValueError("GemmWeightGradConvTranspose2d has no output_padding; output_size is not supported")
        return _Conv2dGemmWeightGrad.apply(x, self.weight, self.bias, self.stride, self.padding, True)


_FAST_CLASS = {nn.Conv2d: GemmWeightGradConv2d, nn.ConvTranspose2d: GemmWeightGradConvTranspose2d}


def _qualifies(layer: nn.Module, min_channels: int) -> bool:
    """Plain zero-padded, ungrouped, undilated convs, wide and with a kernel larger than 1x1."""
    return (type(layer) in _FAST_CLASS and layer.groups == 1 and tuple(layer.dilation) == (1, 1)
            and tuple(layer.kernel_size) != (1, 1)
            and layer.padding_mode == "zeros" and not isinstance(layer.padding, str)
            and tuple(getattr(layer, "output_padding", (0, 0))) == (0, 0)
            and min(layer.in_channels, layer.out_channels) >= min_channels)


def use_gemm_weight_grad(model: nn.Module, min_channels: int = MIN_CHANNELS) -> nn.Module:
    """Switch every qualifying conv of `model` to its GEMM-weight-gradient subclass, in place.

    The subclasses add no state and only override forward, so the layer's class is swapped: parameters
    (and an optimiser already holding them), hooks and state_dict stay as they are.
    """
    for layer in model.modules():
        if _qualifies(layer, min_channels):
            layer.__class__ = _FAST_CLASS[type(layer)]
    return model
