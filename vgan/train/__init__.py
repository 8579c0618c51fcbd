"""The train stage: one trainer for every architecture, checkpoints, EMA and data parallelism."""
