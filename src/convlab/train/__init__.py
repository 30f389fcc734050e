"""Training: optimizers and schedules, metrics, the loop, checkpoints, the runner."""

from convlab.train import notebook as _notebook  # noqa: F401 - registers its display
