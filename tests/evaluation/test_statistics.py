import numpy as np
import pytest
import scipy.linalg
import torch

from vaegan.evaluation.statistics import (RunningMoments, frechet_distance, inception_score,
                                          kernel_inception_distance)


def _gaussian(rng, n, d, shift=0.0, scale=1.0):
    mixing = rng.normal(size=(d, d)) * 0.3 + np.eye(d)
    return rng.normal(size=(n, d)) @ mixing * scale + shift


def test_frechet_distance_matches_a_direct_scipy_computation():
    rng = np.random.default_rng(0)
    a, b = _gaussian(rng, 500, 8), _gaussian(rng, 400, 8, shift=0.5, scale=1.3)
    mu1, mu2, s1, s2 = a.mean(0), b.mean(0), np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root1 = scipy.linalg.sqrtm(s1).real  # the symmetric form Tr sqrt(sqrt(S1) S2 sqrt(S1)): another route
    direct = np.sum((mu1 - mu2) ** 2) + np.trace(s1 + s2) - 2 * np.trace(scipy.linalg.sqrtm(root1 @ s2 @ root1).real)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(direct, rel=1e-6)


def test_frechet_distance_of_identical_statistics_is_zero_and_of_shifted_means_is_the_shift():
    rng = np.random.default_rng(1)
    a = _gaussian(rng, 300, 5)
    mu, sigma = a.mean(0), np.cov(a, rowvar=False)
    assert abs(frechet_distance(mu, sigma, mu, sigma)) < 1e-6
    assert frechet_distance(mu, sigma, mu + 2.0, sigma) == pytest.approx(4.0 * 5, abs=1e-5)


def test_frechet_distance_of_rank_deficient_covariances_is_real_and_equals_the_eigenvalue_route():
    # 20 rows of 128 ReLU features, as per-class statistics of 2000 samples over 100 classes: sqrtm(S1 S2)
    # has imaginary parts above pytorch-fid's tolerance there (it refuses them); the distance stays real
    rng = np.random.default_rng(0)
    mixing = rng.normal(size=(128, 128)) * 0.3 + np.eye(128)
    a = np.maximum(rng.normal(size=(20, 128)) @ mixing, 0) * 100
    b = np.maximum(rng.normal(size=(20, 128)) @ mixing + 0.3, 0) * 120
    mu1, mu2, s1, s2 = a.mean(0), b.mean(0), np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    assert np.abs(scipy.linalg.sqrtm(s1 @ s2).imag).max() > 1e-3
    eigenvalues = np.clip(np.linalg.eigvals(s1 @ s2).real, 0, None)
    direct = np.sum((mu1 - mu2) ** 2) + np.trace(s1 + s2) - 2 * np.sqrt(eigenvalues).sum()
    distance = frechet_distance(mu1, s1, mu2, s2)
    assert np.isfinite(distance) and distance == pytest.approx(direct, rel=1e-4)
    assert distance == pytest.approx(frechet_distance(mu2, s2, mu1, s1), rel=1e-6)
    assert abs(frechet_distance(mu1, s1, mu1, s1)) < 1e-6 * np.trace(s1)  # rounding only


def test_streaming_moments_equal_the_batch_computation():
    rng = np.random.default_rng(2)
    rows = rng.normal(size=(1000, 16)) * 3 + 1
    moments = RunningMoments(16)
    for start in range(0, 1000, 137):
        moments.update(torch.from_numpy(rows[start:start + 137]))
    assert np.abs(moments.mean() - rows.mean(0)).max() < 1e-10
    assert np.abs(moments.covariance() - np.cov(rows, rowvar=False)).max() < 1e-10


def _direct_kid(x, y):
    d = x.shape[1]
    k = lambda a, b: (a @ b / d + 1) ** 3  # noqa: E731
    m, n = len(x), len(y)
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(n)) / (m * n)
    return xx + yy - 2 * xy


def test_kid_matches_a_direct_quadratic_computation():
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(30, 4)), rng.normal(size=(30, 4)) + 0.7
    mean, std = kernel_inception_distance(x, y, subsets=3, subset_size=30)  # each subset is the whole set
    assert mean == pytest.approx(_direct_kid(x, y), rel=1e-10) and std == pytest.approx(0.0, abs=1e-12)
    big = rng.normal(size=(400, 4))
    same, _ = kernel_inception_distance(big[:200], big[200:], subsets=5, subset_size=100)
    shifted, _ = kernel_inception_distance(big[:200], big[200:] + 0.7, subsets=5, subset_size=100)
    assert abs(same) < 0.2 * shifted


def test_inception_score_on_hand_made_logits():
    uniform = np.zeros((50, 1008))
    assert inception_score(uniform, splits=5)[0] == pytest.approx(1.0)
    one_hot = np.full((20, 20), -1e4)
    np.fill_diagonal(one_hot, 1e4)
    assert inception_score(one_hot, splits=1)[0] == pytest.approx(20.0, rel=1e-6)
