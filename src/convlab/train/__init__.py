"""Training: optimizers and schedules, metrics, the loop, checkpoints, the runner."""
