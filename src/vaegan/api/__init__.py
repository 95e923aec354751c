"""vaegan from Python: train and resume runs, open them, use their models, evaluate them, draw their figures.

    import vaegan
    run = vaegan.train("cvaegan-cifar100", "runs/quick", {"data.name": "shapes10", "train.max_steps": 200})
    run.sample(count=8, classes=[0, 1])          # uint8 [16, 3, 32, 32]
    run.evaluate(["recon", "sharp"])             # numbers, also in RUN/eval.json
"""

from vaegan.api.run import Encoding, Picture, Run, open_run, quality_curves
from vaegan.api.training import resume, train

__all__ = ["Encoding", "Picture", "Run", "open_run", "quality_curves", "resume", "train"]
