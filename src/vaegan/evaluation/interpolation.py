"""Latent interpolation between two encoded test images, and (conditional models) between two labels; how evenly
the decoded images change along a path."""

from __future__ import annotations

import torch

from vaegan.models import GenerativeModel, evaluation_mode

MODES = ("linear", "slerp")


def slerp(a: torch.Tensor, b: torch.Tensor, t: float) -> torch.Tensor:
    """Spherical interpolation of the rows of a and b (norms interpolated linearly); linear where a, b align."""
    a_norm, b_norm = a.norm(dim=-1, keepdim=True), b.norm(dim=-1, keepdim=True)
    cos = ((a / a_norm.clamp_min(1e-12)) * (b / b_norm.clamp_min(1e-12))).sum(-1, keepdim=True).clamp(-1, 1)
    omega = torch.arccos(cos)
    sin = torch.sin(omega)
    aligned = sin.abs() < 1e-6
    safe_sin = torch.where(aligned, torch.ones_like(sin), sin)
    direction = (torch.sin((1 - t) * omega) * a / a_norm.clamp_min(1e-12)
                 + torch.sin(t * omega) * b / b_norm.clamp_min(1e-12)) / safe_sin
    spherical = direction * ((1 - t) * a_norm + t * b_norm)
    return torch.where(aligned, torch.lerp(a, b, t), spherical)


def path(a: torch.Tensor, b: torch.Tensor, steps: int, mode: str = "linear") -> torch.Tensor:
    """[steps, *a.shape]: from a (t=0) to b (t=1) in equal steps of t."""
    if mode not in MODES:
        raise ValueError(f"unknown interpolation mode {mode!r}; choose one of {MODES}")
    ts = torch.linspace(0, 1, steps).tolist()
    return torch.stack([torch.lerp(a, b, t) if mode == "linear" else slerp(a, b, t) for t in ts])


def interpolation_rows(model: GenerativeModel, x: torch.Tensor, y: torch.Tensor, steps: int, mode: str = "linear"
                       ) -> dict[str, torch.Tensor]:
    """Rows for pairs (x[2i], x[2i+1]): the real endpoint images around `steps` decoded images.

    "latent": the path between the posterior means at the first image's label. "label" (conditional models):
    the first image's mean decoded along the straight path between the two label embeddings.
    Returns images [pairs * (steps + 2), 3, 32, 32] per kind, row-major.
    """
    if model.encoder is None:
        raise ValueError("interpolation encodes test images: this model has no encoder")
    first, second = x[0::2], x[1::2]
    rows: dict[str, list[torch.Tensor]] = {"latent": []}
    with evaluation_mode(model):
        y_used = model.labels(y)
        mu, _ = model.encoder(x, y_used)
        for i in range(len(first)):
            label = None if y_used is None else y_used[2 * i].repeat(steps)
            decoded = model.decode(path(mu[2 * i], mu[2 * i + 1], steps, mode), label)
            rows["latent"].append(torch.cat([first[i:i + 1], decoded, second[i:i + 1]]))
        if model.conditional:
            rows["label"] = []
            for i in range(len(first)):
                labels = path(model.embed_labels(y[2 * i]), model.embed_labels(y[2 * i + 1]), steps, "linear")
                decoded = model.decode(mu[2 * i].repeat(steps, 1), labels)
                rows["label"].append(torch.cat([first[i:i + 1], decoded, second[i:i + 1]]))
    return {kind: torch.cat(r) for kind, r in rows.items()}


def step_ratios(rows: torch.Tensor, steps: int) -> torch.Tensor:
    """[pairs] largest / mean pixel-space distance between neighbouring decoded images of each path, for rows as
    `interpolation_rows` lays them out (steps + 2 images a pair, the real endpoints excluded). 1 is a perfectly
    even path; one abrupt jump among k steps approaches k."""
    decoded = rows.view(-1, steps + 2, *rows.shape[1:])[:, 1:-1].flatten(2)
    distances = (decoded[:, 1:] - decoded[:, :-1]).norm(dim=2)
    return distances.max(1).values / distances.mean(1).clamp_min(1e-12)
