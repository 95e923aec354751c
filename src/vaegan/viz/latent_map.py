"""A 2-D map of the test-set posterior means coloured by class, titled with their kNN accuracy."""

from __future__ import annotations

import torch
from matplotlib import colormaps
from matplotlib.figure import Figure

from vaegan.data import ImageDataset
from vaegan.evaluation.latent import encode_means, knn_accuracy, map_2d
from vaegan.models import GenerativeModel

MAX_LEGEND = 20


def latent_map_figure(model: GenerativeModel, dataset: ImageDataset, n: int, method: str, device: torch.device,
                      seed: int = 0) -> tuple[Figure, dict[str, float]]:
    """Encode the first n images of `dataset`, colour by class (by the 20 superclasses where the dataset has
    them, as CIFAR-100 does); returns the map and the kNN accuracies."""
    subset = dataset.head(n)
    means = encode_means(model, subset, device)
    use_coarse = subset.coarse_labels is not None
    colour_labels = subset.coarse_labels if use_coarse else subset.labels
    colour_names = subset.coarse_class_names if use_coarse else subset.class_names
    result = {"knn_accuracy": knn_accuracy(means, subset.labels), "images": len(subset)}
    if use_coarse:
        result["knn_accuracy_superclass"] = knn_accuracy(means, subset.coarse_labels)
    points = map_2d(means, method, seed)

    figure = Figure(figsize=(9.5, 6.5), layout="constrained")
    axes = figure.add_subplot()
    palette = colormaps["tab20"] if len(colour_names) > 10 else colormaps["tab10"]
    labels = colour_labels.numpy()
    for c, name in enumerate(colour_names):
        chosen = labels == c
        axes.scatter(points[chosen, 0], points[chosen, 1], s=5, alpha=0.7, color=palette(c % palette.N),
                     label=name.replace("_", " "), linewidths=0)
    if len(colour_names) <= MAX_LEGEND:
        axes.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8, markerscale=3, frameon=False)
    title = f"{method.upper()} of {len(subset)} {subset.split}-set posterior means; 5-NN accuracy " \
            f"{result['knn_accuracy']:.1%} over {subset.num_classes} classes"
    if use_coarse:
        title += f", {result['knn_accuracy_superclass']:.1%} over the 20 superclasses (colours)"
    axes.set_title(title, fontsize=9)
    axes.set_xticks([])
    axes.set_yticks([])
    return figure, result

