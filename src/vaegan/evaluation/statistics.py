"""Distances between feature distributions: streaming moments, Frechet distance, KID, Inception Score.

The formulas follow the public reference implementations (pytorch-fid for the Frechet distance,
Binkowski et al. 2018 / torch-fidelity for KID, Salimans et al. 2016 for IS) so numbers compare with papers
that used them, given the same features.
"""

from __future__ import annotations

import numpy as np
import torch


class RunningMoments:
    """Mean and covariance of feature rows accumulated batch by batch in float64, without keeping the rows."""

    def __init__(self, dim: int):
        self.count = 0
        self.total = np.zeros(dim)
        self.outer = np.zeros((dim, dim))

    def update(self, features: torch.Tensor | np.ndarray) -> None:
        rows = np.asarray(features.detach().cpu() if isinstance(features, torch.Tensor) else features,
                          dtype=np.float64)
        self.count += len(rows)
        self.total += rows.sum(0)
        self.outer += rows.T @ rows

    def mean(self) -> np.ndarray:
        return self.total / self.count

    def covariance(self) -> np.ndarray:
        """Unbiased (ddof=1), as np.cov(rows, rowvar=False)."""
        mean = self.mean()
        return (self.outer - self.count * np.outer(mean, mean)) / (self.count - 1)


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """||mu1 - mu2||^2 + Tr(S1 + S2 - 2 sqrt(S1 S2)), pytorch-fid's formula.

    Tr sqrt(S1 S2) is the sum of the square roots of the eigenvalues of S1 S2, taken from the symmetric
    S1^1/2 S2 S1^1/2 that has the same ones: where pytorch-fid's sqrtm is well conditioned the values agree;
    where it is not (covariances of fewer rows than dimensions, as per-class statistics often are) sqrtm
    returns complex roots, and this stays real and finite.
    """
    diff = mu1 - mu2
    return float(diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * _trace_sqrt_product(sigma1, sigma2))


def _trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
    values, vectors = np.linalg.eigh(sigma1)
    root = (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T  # S1^1/2
    return float(np.sqrt(np.clip(np.linalg.eigvalsh(root @ sigma2 @ root), 0, None)).sum())


def _polynomial_mmd(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD^2 with the kernel k(a, b) = (a.b / d + 1)^3."""
    d, m, n = x.shape[1], len(x), len(y)
    k_xx = (x @ x.T / d + 1) ** 3
    k_yy = (y @ y.T / d + 1) ** 3
    k_xy = (x @ y.T / d + 1) ** 3
    return float((k_xx.sum() - np.trace(k_xx)) / (m * (m - 1)) + (k_yy.sum() - np.trace(k_yy)) / (n * (n - 1))
                 - 2 * k_xy.mean())


def kernel_inception_distance(real: np.ndarray, fake: np.ndarray, subsets: int = 100, subset_size: int = 1000,
                              seed: int = 0) -> tuple[float, float]:
    """KID: mean and std of the unbiased polynomial-kernel MMD^2 over random subsets (without replacement
    within a subset) of both sets."""
    real, fake = np.asarray(real, dtype=np.float64), np.asarray(fake, dtype=np.float64)
    size = min(subset_size, len(real), len(fake))
    if size < 2:
        raise ValueError("KID needs at least 2 samples in each set")
    rng = np.random.default_rng(seed)
    values = [_polynomial_mmd(real[rng.choice(len(real), size, replace=False)],
                              fake[rng.choice(len(fake), size, replace=False)]) for _ in range(subsets)]
    return float(np.mean(values)), float(np.std(values))


def inception_score(logits: np.ndarray, splits: int = 10) -> tuple[float, float]:
    """exp(E_x KL(p(y|x) || p(y))) per split of the samples; mean and std over splits."""
    logits = np.asarray(logits, dtype=np.float64)
    probs = np.exp(logits - logits.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    scores = []
    for part in np.array_split(probs, splits):
        marginal = part.mean(0, keepdims=True)
        kl = (part * (np.log(part + 1e-12) - np.log(marginal + 1e-12))).sum(1)
        scores.append(np.exp(kl.mean()))
    return float(np.mean(scores)), float(np.std(scores))
