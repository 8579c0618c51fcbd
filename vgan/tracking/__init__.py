"""Everything that talks to MLflow: the store and the stage runs (``runs``), their provenance tags
(``provenance``), the generator as an MLflow model (``export``, served by ``pyfunc_model``, a file MLflow copies
into every logged model) and the model registry with its quality gate and champion/challenger aliases
(``registry``). No other package imports mlflow.

Imports: mlflow inside functions (it costs seconds, so `vgan --help` stays fast); from vgan ``util``, ``params``,
``metrics.catalog`` and, inside functions, the generator file (``vgan.train.generator_file``). ``pyfunc_model``
imports nothing from vgan (a consumer of a logged model needs no vgan installation). Other packages import
``tracking`` inside functions only.
"""
