"""Precision and recall of generated samples (Kynkaanniemi et al. 2019): k-NN balls around each set."""

from __future__ import annotations

import numpy as np
import torch

CHUNK = 1024


def _kth_neighbour_radius(points: torch.Tensor, k: int) -> torch.Tensor:
    """Distance from each point to its k-th nearest other point of the same set."""
    radii = []
    for start in range(0, len(points), CHUNK):
        d = torch.cdist(points[start:start + CHUNK], points)
        radii.append(d.kthvalue(k + 1, dim=1).values)  # the 0 to itself is the first
    return torch.cat(radii)


def _inside_any_ball(queries: torch.Tensor, centres: torch.Tensor, radii: torch.Tensor) -> torch.Tensor:
    inside = []
    for start in range(0, len(queries), CHUNK):
        d = torch.cdist(queries[start:start + CHUNK], centres)
        inside.append((d <= radii[None, :]).any(dim=1))
    return torch.cat(inside)


def precision_recall(real: np.ndarray, fake: np.ndarray, k: int = 3) -> tuple[float, float]:
    """precision: share of fakes inside the real manifold; recall: share of reals inside the fake manifold."""
    real_t, fake_t = torch.from_numpy(np.asarray(real, np.float64)), torch.from_numpy(np.asarray(fake, np.float64))
    precision = _inside_any_ball(fake_t, real_t, _kth_neighbour_radius(real_t, k)).double().mean().item()
    recall = _inside_any_ball(real_t, fake_t, _kth_neighbour_radius(fake_t, k)).double().mean().item()
    return precision, recall


def mean_pairwise_distance(rows: np.ndarray, limit: int = 1000) -> float:
    """Mean Euclidean distance between distinct rows (the first `limit` rows): how spread a set of features is."""
    points = torch.from_numpy(np.asarray(rows[:limit], dtype=np.float64))
    if len(points) < 2:
        raise ValueError("the spread of a set needs at least two points")
    distances = torch.cdist(points, points)
    return float(distances.sum() / (len(points) * (len(points) - 1)))
