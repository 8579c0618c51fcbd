"""The train stage: one trainer for every architecture (``run``, ``loop``, ``steps``), its objectives
(``losses``) and the discriminators' augmentation (``augment``), checkpoints, EMA, data parallelism
(``distributed``) and the generator file that `vgan train` writes and `sample`, `evaluate`, `anomaly` and
`register` load (``generator_file``).

Imports: torch and numpy at module level (mlflow, webdataset where used, so a GPU machine without the MLOps stack
can train); from vgan ``util``, ``params``, ``models``, ``data.loader`` and, inside functions, ``tracking`` (the
train run's MLflow logging).
"""
