"""How the latent space organises the classes: posterior means of test images, their kNN accuracy, 2-D maps."""

from __future__ import annotations

import numpy as np
import torch

from vaegan.data import ImageDataset, sequential_batches
from vaegan.errors import VaeganError
from vaegan.models import GenerativeModel, evaluation_mode

MAP_METHODS = ("pca", "tsne")
KNN_K = 5  # neighbours of the kNN accuracy


def encode_means(model: GenerativeModel, dataset: ImageDataset, device: torch.device) -> torch.Tensor:
    """Posterior means [N, latent_dim] of every image of `dataset` (conditional encoders get the true label)."""
    means = []
    with evaluation_mode(model):
        for x, y in sequential_batches(dataset, device):
            means.append(model.encoder(x, model.labels(y))[0].float())
    return torch.cat(means).cpu()  # one transfer, not one per batch


def knn_accuracy(features: torch.Tensor, labels: torch.Tensor, k: int = KNN_K) -> float:
    """Leave-one-out k-nearest-neighbour accuracy (Euclidean, majority vote, ties to the nearest)."""
    if len(features) <= k:
        raise VaeganError(f"the {k}-NN accuracy of the latent space needs more than {k} test images, got "
                          f"{len(features)}")
    distances = torch.cdist(features.double(), features.double())
    distances.fill_diagonal_(float("inf"))
    neighbours = distances.topk(k, largest=False).indices  # nearest first
    votes = labels[neighbours]
    num_classes = int(labels.max()) + 1
    counts = torch.zeros(len(labels), num_classes, dtype=torch.float64)
    counts.scatter_add_(1, votes, torch.ones_like(votes, dtype=torch.float64))
    # a tiny bonus for nearer neighbours breaks ties toward the nearest class
    counts.scatter_add_(1, votes, torch.linspace(1e-3, 1e-4, k, dtype=torch.float64).expand(len(labels), k))
    return (counts.argmax(1) == labels).double().mean().item()


def map_2d(features: torch.Tensor, method: str = "pca", seed: int = 0) -> np.ndarray:
    """[N, 2] coordinates: the top two principal components, or a t-SNE embedding (scikit-learn)."""
    if method not in MAP_METHODS:
        raise ValueError(f"unknown map method {method!r}; choose one of {MAP_METHODS}")
    x = features.double() - features.double().mean(0)
    if method == "pca":
        _, _, v = torch.linalg.svd(x, full_matrices=False)
        return (x @ v[:2].T).numpy()
    from sklearn.manifold import TSNE

    return TSNE(n_components=2, init="pca", perplexity=min(30.0, (len(x) - 1) / 3), random_state=seed
                ).fit_transform(x.numpy())
