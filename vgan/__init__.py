"""vgan: raw video to a trained, evaluated, registered video GAN, reproducibly."""

__version__ = "0.1.0"

# Offline and quiet: no telemetry from Prefect, MLflow or DVC (set by the CLI, the flows and the tests).
QUIET_ENV = {"DO_NOT_TRACK": "true", "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
             "MLFLOW_DISABLE_TELEMETRY": "true", "DVC_NO_ANALYTICS": "1"}
