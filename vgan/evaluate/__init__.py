"""The evaluator and evaluate stages: ``evaluator_stage`` (`vgan evaluator`) trains the feature network on real
train clips, ``evaluate_stage`` (`vgan evaluate`) scores generated clips against real ones and the baselines in
that network's space (and the external protocols'), ``evaluation_report`` writes reports/evaluation.md. The
metrics' maths is in ``vgan.metrics``; the stage code here reads params, calls it and writes the outputs.

Imports: ``util``, ``data``, ``metrics``, ``sample``, the generator file (``vgan.train.generator_file``) and,
inside the function that logs the run, ``tracking``. Nothing imports this package but the CLI (and tests, bench).
"""
