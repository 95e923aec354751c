"""The Inception-v3 network of the standard FID, written in plain torch, and its weights file.

It is the 2015-12-05 TensorFlow graph as ported to PyTorch for FID (pytorch-fid's `fid_inception_v3`): the
torchvision Inception-v3 layout without the auxiliary head, 1008-way logits, and the graph's quirks in the
pooling branches (average pools that ignore padding, a max pool in the last block). Input images in [-1, 1]
are mapped to [0, 1], resized bilinearly to 299x299 and scaled back to [-1, 1], as the reference does.
Outputs: the 2048-d pool features (FID, KID) and the 1008 logits (Inception Score).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.request
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from vaegan.runs.files import download_temp_pattern, remove_stale_temp_files, temp_prefix
from vaegan.errors import VaeganError

WEIGHTS_FILE = "pt_inception-2015-12-05-6726825d.pth"
WEIGHTS_URL = f"https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/{WEIGHTS_FILE}"
WEIGHTS_SHA256_PREFIX = "6726825d"
ENV_VAR = "VAEGAN_INCEPTION"


class BasicConv2d(nn.Module):
    def __init__(self, c_in: int, c_out: int, kernel, stride=1, padding=0):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, kernel, stride, padding, bias=False)
        self.bn = nn.BatchNorm2d(c_out, eps=0.001)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)), inplace=True)


def _avg_pool(x: torch.Tensor) -> torch.Tensor:
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)  # TF ignores padding


class InceptionA(nn.Module):
    def __init__(self, c_in: int, pool_features: int):
        super().__init__()
        self.branch1x1 = BasicConv2d(c_in, 64, 1)
        self.branch5x5_1 = BasicConv2d(c_in, 48, 1)
        self.branch5x5_2 = BasicConv2d(48, 64, 5, padding=2)
        self.branch3x3dbl_1 = BasicConv2d(c_in, 64, 1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, padding=1)
        self.branch_pool = BasicConv2d(c_in, pool_features, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch1x1(x), self.branch5x5_2(self.branch5x5_1(x)),
                          self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
                          self.branch_pool(_avg_pool(x))], 1)


class InceptionB(nn.Module):
    def __init__(self, c_in: int):
        super().__init__()
        self.branch3x3 = BasicConv2d(c_in, 384, 3, stride=2)
        self.branch3x3dbl_1 = BasicConv2d(c_in, 64, 1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch3x3(x), self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
                          F.max_pool2d(x, kernel_size=3, stride=2)], 1)


class InceptionC(nn.Module):
    def __init__(self, c_in: int, channels_7x7: int):
        super().__init__()
        c7 = channels_7x7
        self.branch1x1 = BasicConv2d(c_in, 192, 1)
        self.branch7x7_1 = BasicConv2d(c_in, c7, 1)
        self.branch7x7_2 = BasicConv2d(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7_3 = BasicConv2d(c7, 192, (7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = BasicConv2d(c_in, c7, 1)
        self.branch7x7dbl_2 = BasicConv2d(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = BasicConv2d(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = BasicConv2d(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = BasicConv2d(c7, 192, (1, 7), padding=(0, 3))
        self.branch_pool = BasicConv2d(c_in, 192, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        d7 = x
        for layer in (self.branch7x7dbl_1, self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4,
                      self.branch7x7dbl_5):
            d7 = layer(d7)
        return torch.cat([self.branch1x1(x), b7, d7, self.branch_pool(_avg_pool(x))], 1)


class InceptionD(nn.Module):
    def __init__(self, c_in: int):
        super().__init__()
        self.branch3x3_1 = BasicConv2d(c_in, 192, 1)
        self.branch3x3_2 = BasicConv2d(192, 320, 3, stride=2)
        self.branch7x7x3_1 = BasicConv2d(c_in, 192, 1)
        self.branch7x7x3_2 = BasicConv2d(192, 192, (1, 7), padding=(0, 3))
        self.branch7x7x3_3 = BasicConv2d(192, 192, (7, 1), padding=(3, 0))
        self.branch7x7x3_4 = BasicConv2d(192, 192, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b7 = self.branch7x7x3_4(self.branch7x7x3_3(self.branch7x7x3_2(self.branch7x7x3_1(x))))
        return torch.cat([self.branch3x3_2(self.branch3x3_1(x)), b7, F.max_pool2d(x, kernel_size=3, stride=2)], 1)


class InceptionE(nn.Module):
    """`max_pool`: the FID graph's last block pools with max instead of average."""

    def __init__(self, c_in: int, max_pool: bool = False):
        super().__init__()
        self.max_pool = max_pool
        self.branch1x1 = BasicConv2d(c_in, 320, 1)
        self.branch3x3_1 = BasicConv2d(c_in, 384, 1)
        self.branch3x3_2a = BasicConv2d(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3_2b = BasicConv2d(384, 384, (3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = BasicConv2d(c_in, 448, 1)
        self.branch3x3dbl_2 = BasicConv2d(448, 384, 3, padding=1)
        self.branch3x3dbl_3a = BasicConv2d(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = BasicConv2d(384, 384, (3, 1), padding=(1, 0))
        self.branch_pool = BasicConv2d(c_in, 192, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3 = self.branch3x3_1(x)
        d3 = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        pooled = F.max_pool2d(x, kernel_size=3, stride=1, padding=1) if self.max_pool else _avg_pool(x)
        return torch.cat([self.branch1x1(x), self.branch3x3_2a(b3), self.branch3x3_2b(b3),
                          self.branch3x3dbl_3a(d3), self.branch3x3dbl_3b(d3), self.branch_pool(pooled)], 1)


class FIDInceptionV3(nn.Module):
    """images in [-1, 1], any size -> (pool features [N, 2048], logits [N, 1008])."""

    def __init__(self):
        super().__init__()
        self.Conv2d_1a_3x3 = BasicConv2d(3, 32, 3, stride=2)
        self.Conv2d_2a_3x3 = BasicConv2d(32, 32, 3)
        self.Conv2d_2b_3x3 = BasicConv2d(32, 64, 3, padding=1)
        self.Conv2d_3b_1x1 = BasicConv2d(64, 80, 1)
        self.Conv2d_4a_3x3 = BasicConv2d(80, 192, 3)
        self.Mixed_5b = InceptionA(192, pool_features=32)
        self.Mixed_5c = InceptionA(256, pool_features=64)
        self.Mixed_5d = InceptionA(288, pool_features=64)
        self.Mixed_6a = InceptionB(288)
        self.Mixed_6b = InceptionC(768, channels_7x7=128)
        self.Mixed_6c = InceptionC(768, channels_7x7=160)
        self.Mixed_6d = InceptionC(768, channels_7x7=160)
        self.Mixed_6e = InceptionC(768, channels_7x7=192)
        self.Mixed_7a = InceptionD(768)
        self.Mixed_7b = InceptionE(1280)
        self.Mixed_7c = InceptionE(2048, max_pool=True)
        self.fc = nn.Linear(2048, 1008)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = (images + 1) / 2  # the reference takes [0, 1] and resizes before scaling to [-1, 1]
        x = 2 * F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False) - 1
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = F.max_pool2d(x, kernel_size=3, stride=2)
        x = F.max_pool2d(self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x)), kernel_size=3, stride=2)
        for block in (self.Mixed_5b, self.Mixed_5c, self.Mixed_5d, self.Mixed_6a, self.Mixed_6b, self.Mixed_6c,
                      self.Mixed_6d, self.Mixed_6e, self.Mixed_7a, self.Mixed_7b, self.Mixed_7c):
            x = block(x)
        pool = x.mean(dim=(2, 3))
        return pool, self.fc(pool)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _missing_message(cache: Path, reason: str) -> str:
    return (f"Inception weights for FID/KID/IS are not available ({reason}): download {WEIGHTS_URL} and set "
            f"{ENV_VAR}=/path/to/{WEIGHTS_FILE} (or evaluation.inception_weights), or place it at {cache}")


def inception_weights_path(configured: str | None, cache_dir: Path, download: bool = True) -> Path:
    """The weights file: the configured path, else $VAEGAN_INCEPTION, else the cache (downloaded into it when
    absent, checked against the sha256 prefix in its name). Every failure is one VaeganError saying how to
    provide the file."""
    chosen = configured or os.environ.get(ENV_VAR)
    cache = Path(cache_dir) / WEIGHTS_FILE
    if chosen:
        path = Path(chosen).expanduser()
        if not path.is_file():
            raise VaeganError(_missing_message(cache, f"no file at {path}"))
        return path
    if cache.is_file():
        return cache
    if not download:
        raise VaeganError(_missing_message(cache, "not in the cache and download is off"))
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        _download(cache)
    except OSError as err:
        raise VaeganError(_missing_message(cache, f"download impossible: {err}")) from None
    return cache


def _download(cache: Path) -> None:
    """Fetch into a temp file of this process (two processes may fetch at once) and move it into place, once
    checked; temp files that killed downloads left are removed first."""
    remove_stale_temp_files(cache.parent, download_temp_pattern(cache.name, ".part"))
    handle, partial_name = tempfile.mkstemp(dir=cache.parent, prefix=temp_prefix(cache.name), suffix=".part")
    os.close(handle)
    partial = Path(partial_name)
    try:
        urllib.request.urlretrieve(WEIGHTS_URL, partial)
        if not sha256_of(partial).startswith(WEIGHTS_SHA256_PREFIX):
            raise VaeganError(_missing_message(cache, "the downloaded file failed its sha256 check"))
        os.replace(partial, cache)
    finally:
        partial.unlink(missing_ok=True)


def present_weights_path(configured: str | None, cache_dir: Path) -> Path | None:
    """The weights file when one is configured or already cached, else None (never downloads): for callers
    that add FID only where the weights are at hand."""
    if not (configured or os.environ.get(ENV_VAR) or (Path(cache_dir) / WEIGHTS_FILE).is_file()):
        return None
    return inception_weights_path(configured, cache_dir, download=False)


def load_fid_inception(path: Path, device: torch.device | str = "cpu") -> FIDInceptionV3:
    """The network with the weights of `path` (loaded with weights_only), in eval mode."""
    model = FIDInceptionV3()
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # any unreadable file: one message naming it
        raise VaeganError(f"cannot read Inception weights {path}: {str(err).splitlines()[0]}") from None
    not_weights = f"{path} is not the FID Inception weights file"
    if not isinstance(state, dict):  # a tensor, a list, ...: weights_only loads any plain data
        raise VaeganError(f"{not_weights} (it holds a {type(state).__name__}, not a dict of tensors)")
    if not all(isinstance(key, str) and isinstance(value, torch.Tensor) for key, value in state.items()):
        raise VaeganError(f"{not_weights} (some of its entries are not named tensors)")
    for key, value in model.state_dict().items():  # files written before BatchNorm counted batches
        if key.endswith("num_batches_tracked"):
            state.setdefault(key, value)
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        raise VaeganError(f"{not_weights} ({str(err).splitlines()[0]})") from None
    model = model.to(device).eval()
    if torch.device(device).type in ("cpu", "cuda"):  # NHWC convolutions: ~1.5x faster on CPU
        model = model.to(memory_format=torch.channels_last)
    return model
