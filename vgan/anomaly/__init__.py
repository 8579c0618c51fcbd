"""`vgan anomaly`: score clips by how far the real future deviates from a predictor's prediction
(``anomaly_stage``), and its report, reports/anomaly.md and its picture (``anomaly_report``). The scoring rules
(ROC AUC, clip and frame scores) are ``vgan.metrics.anomaly``; the synthetic anomalies ``vgan.data.anomalies``.

Imports: ``util``, ``data``, ``metrics``, ``models`` and the generator file and checkpoints (``vgan.train``), all
inside functions but ``util``. Nothing imports this package but the CLI (and tests).
"""
