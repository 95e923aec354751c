"""vaegan: train, evaluate and compare VAE-family image generators on CIFAR-10 and CIFAR-100."""

__version__ = "0.1.0"
