"""`vaegan reproduce`: both reference experiments end to end in one resumable command, with a verdict on
every claim (claims.py: the rules; experiments.py: the runs and numbers; report.py: the pages; run.py: the
command). This namespace stays free of torch, so that the command line lists the choices without loading it."""

EXPERIMENT_NAMES = ("cifar100-vaegan", "cifar10-regularization")
CHOICES = (*EXPERIMENT_NAMES, "all")
