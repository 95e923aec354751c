"""Numbers that judge a trained model. This package's own namespace stays free of torch, so that the command
line lists the metrics without loading it."""

METRICS = ("fid", "kid", "is", "fcd", "cc", "pr", "div", "recon", "latent", "sharp", "smooth")  # `vaegan evaluate`
