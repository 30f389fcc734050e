"""The training loop: short and visible on purpose (nanoGPT's train.py is the model).

Everything the loop needs sits in a ``Trainer`` built by ``runner.py``; everything
that must survive a kill sits in ``LoopState`` and goes into each checkpoint.
"""

from __future__ import annotations

import math
import signal
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass, field
from types import FrameType
from typing import Any

import torch
from torch import nn

from convlab.config import ExperimentConfig
from convlab.data.pipeline import InMemoryLoader
from convlab.runs import Run
from convlab.track import Tracking
from convlab.train import checkpoint as ckpt
from convlab.train.averaging import TTAModel, WeightAverage
from convlab.train.metrics import Accumulator, evaluate
from convlab.train.progress import Reporter


class Diverged(Exception):
    """A non-finite loss: the run stops with status ``diverged``."""


# A caller's verdict after each epoch, given the epoch and its metrics by split: a reason
# to stop the run now (status ``pruned``), or None to go on. A sweep's pruner is one.
EpochHook = Callable[[int, dict[str, dict[str, float]]], str | None]


@dataclass
class LoopState:
    """Where the loop is: enough to continue exactly after a kill."""

    epoch: int = 0  # epochs completed
    step: int = 0  # optimizer steps taken
    batch_in_epoch: int = 0  # batches of the current epoch already trained
    acc_sums: list[float] = field(default_factory=list)  # running train sums this epoch
    acc_count: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)  # metrics.csv rows
    grad_rows: list[dict[str, Any]] = field(default_factory=list)  # steps.csv: gradient norms
    # steps.csv: train loss/accuracy over each log interval (see interval_row)
    step_rows: list[dict[str, Any]] = field(default_factory=list)
    log_sums: list[float] = field(default_factory=list)  # train sums at the last log point
    log_count: int = 0
    best_value: float | None = None
    best_epoch: int | None = None
    bad_epochs: int = 0
    train_seconds: float = 0.0  # time inside training steps (for images/s)
    train_images: int = 0
    eval_seconds: float = 0.0


@dataclass
class Trainer:
    cfg: ExperimentConfig
    model: nn.Module  # the weights (checkpointed)
    net: nn.Module  # what runs forward: the model, or its torch.compile wrapper
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    criterion: nn.Module
    train_loader: InMemoryLoader
    eval_loaders: dict[str, InMemoryLoader]  # "val", "test"
    ks: tuple[int, ...]
    device: torch.device
    autocast: Any  # a context-manager factory: bf16 autocast or a no-op (runner.autocast_factory)
    run: Run
    reporter: Reporter
    epoch_hook: EpochHook | None = None
    tracking: Tracking = field(default_factory=Tracking)  # trackers: guarded, may be none
    ema: WeightAverage | None = None  # train.ema: evaluated and saved once it has an update
    state: LoopState = field(default_factory=LoopState)
    epoch_rng: Any = None  # shuffle-generator state at the start of the current epoch
    stop_requested: int = 0  # set by SIGINT/SIGTERM
    evaluating: bool = False  # a signal now stops the evaluation at once (see _StopSignals)
    message: str = ""  # why the run stopped, when it did not complete

    # ----------------------------------------------------------------------- the loop

    def fit(self) -> str:
        """Train to the end (or early stop, divergence, interrupt); return the status."""
        tc = self.cfg.train
        with _StopSignals(self):
            if tc.eval_at_start and self.state.step == 0 and not any(
                    r["epoch"] == 0 for r in self.state.history):
                self.evaluate_at_start()
            while self.state.epoch < tc.epochs:
                epoch = self.state.epoch + 1
                try:
                    train_metrics = self.train_epoch(epoch)
                except Diverged as e:
                    self.reporter.close()
                    self.message = str(e)
                    self.reporter.message(f"diverged: {e}")
                    return "diverged"
                if train_metrics is None:  # interrupted mid-epoch, checkpoint written
                    self.reporter.close()
                    return "interrupted"
                splits, stop = self.end_epoch(epoch, train_metrics)
                if self.stop_requested:
                    return "interrupted"
                why = self.epoch_hook(epoch, splits) if self.epoch_hook is not None else None
                if why:
                    self.message = why
                    self.reporter.message(f"stopped: {why}")
                    return "pruned"
                if stop:
                    self.reporter.message(
                        f"early stopping at epoch {epoch}: no improvement of "
                        f"{tc.early_stopping.metric} for {tc.early_stopping.patience} epochs"  # type: ignore[union-attr]
                    )
                    break
        return "completed"

    def train_epoch(self, epoch: int) -> dict[str, float] | None:
        """One pass over the training split; None when interrupted (after a checkpoint)."""
        tc, st, loader = self.cfg.train, self.state, self.train_loader
        loader.epoch = epoch - 1  # an alternating flip mirrors the other half each epoch
        self.model.train()
        for m in self.model.modules():  # e.g. a whitening layer's bias trains N epochs
            if callable(hook := getattr(m, "on_epoch_start", None)):
                hook(epoch - 1)
        acc = Accumulator(self.ks, self.device)
        if st.batch_in_epoch:  # resuming inside an epoch: restore the running sums
            acc.sums = torch.tensor(st.acc_sums, dtype=torch.float64, device=self.device)
            acc.count = st.acc_count
            loader.generator.set_state(self.epoch_rng)  # type: ignore[union-attr]
        else:
            self.epoch_rng = loader.generator.get_state()  # type: ignore[union-attr]
            st.log_sums, st.log_count = [], 0
        self.reporter.epoch_start(epoch, tc.epochs, len(loader), st.batch_in_epoch)
        check_every = 1 if self.device.type == "cpu" else tc.log_every  # .item() is free on CPU
        t0 = time.perf_counter()
        t_log, n_log = t0, 0
        for x, y in loader.batches(start=st.batch_in_epoch):
            with self.autocast():
                logits = self.net(x)
                loss = self.criterion(logits.float(), y)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if tc.grad_clip:
                nn.utils.clip_grad_norm_(self.model.parameters(), tc.grad_clip)
            if tc.track_grad_norms and st.step % tc.track_grad_norms == 0:
                st.grad_rows.append({"step": st.step, "epoch": epoch, **grad_norms(self.model)})
            self.optimizer.step()
            self.scheduler.step()
            if self.ema is not None:
                self.ema.step(self.model, st.step + 1, epoch)
            acc.add(loss, logits, y)
            st.step += 1
            st.batch_in_epoch += 1
            st.train_images += int(y.shape[0])
            n_log += 1
            self.reporter.tick(st.batch_in_epoch)  # looks at the clock only
            if st.step % check_every == 0 and not math.isfinite(loss.item()):
                raise Diverged(self._divergence_message(epoch, loss.item()))
            if st.batch_in_epoch % tc.log_every == 0 or st.batch_in_epoch == len(loader):
                now = time.perf_counter()
                sums = acc.sums.tolist()  # the one host sync of the log interval
                row = interval_row(sums, acc.count, st.log_sums, st.log_count, self.ks)
                if row is not None:
                    st.step_rows.append({"step": st.step, "epoch": epoch,
                                         "at_epoch": round(epoch - 1 + st.batch_in_epoch
                                                           / len(loader), 4),
                                         **row, "lr": self.optimizer.param_groups[0]["lr"]})
                st.log_sums, st.log_count = sums, acc.count
                self.reporter.batch(st.batch_in_epoch, means(sums, acc.count, self.ks),
                                    1e3 * (now - t_log) / n_log)
                self.tracking.log_step(st.step, row or {}, self.optimizer.param_groups[0]["lr"],
                                       tc.batch_size * n_log / max(now - t_log, 1e-9))
                t_log, n_log = now, 0
            if self.stop_requested or (tc.checkpoint_every and st.step % tc.checkpoint_every == 0):
                st.acc_sums, st.acc_count = acc.sums.tolist(), acc.count
                st.train_seconds += time.perf_counter() - t0
                t0 = time.perf_counter()
                self.save_checkpoint()
                if self.stop_requested:
                    return None
        st.train_seconds += time.perf_counter() - t0
        # kept in the state: a checkpoint taken while evaluating resumes into evaluation
        st.acc_sums, st.acc_count = acc.sums.tolist(), acc.count
        metrics = acc.result()
        if not math.isfinite(metrics["loss"]):
            raise Diverged(self._divergence_message(epoch, metrics["loss"]))
        return metrics

    def end_epoch(
        self, epoch: int, train_metrics: dict[str, float]
    ) -> tuple[dict[str, dict[str, float]], bool]:
        """Evaluate, record, checkpoint; return the metrics by split, and True when
        early stopping says stop."""
        st, es = self.state, self.cfg.train.early_stopping
        t0 = time.perf_counter()
        splits = {"train": train_metrics}
        self.evaluating = True
        try:
            for name, loader in self.eval_loaders.items():
                self.reporter.eval_start(name, len(loader.data))
                splits[name] = evaluate(self.eval_net(name), loader, self.criterion, self.ks,
                                        self.device, self.autocast())
        except KeyboardInterrupt:  # Ctrl-C while evaluating: keep the trained epoch
            self.stop_requested = self.stop_requested or signal.SIGINT
            self.save_checkpoint()  # the state after training: --resume evaluates it
            self.reporter.close()
            self.reporter.message("interrupted while evaluating; --resume evaluates this "
                                  "epoch without training it again")
            return splits, False
        finally:
            self.evaluating = False
        eval_s = time.perf_counter() - t0
        st.eval_seconds += eval_s
        lr = self.optimizer.param_groups[0]["lr"]
        for name, m in splits.items():
            st.history.append({"epoch": epoch, "split": name, **m, "lr": lr,
                               "time_s": round(st.train_seconds + st.eval_seconds, 3)})
        st.epoch, st.batch_in_epoch, st.acc_sums, st.acc_count = epoch, 0, [], 0
        stop = False
        if es is not None:
            split, metric = es.metric.split(".")
            value = splits[split][metric]
            better = st.best_value is None or (
                value < st.best_value - es.min_delta if es.mode == "min"
                else value > st.best_value + es.min_delta
            )
            if better:
                st.best_value, st.best_epoch, st.bad_epochs = value, epoch, 0
                self.run.checkpoint_dir.mkdir(exist_ok=True)
                ckpt.save_weights(self.weights(), self.run.checkpoint_dir / "best.safetensors")
            else:
                st.bad_epochs += 1
                stop = st.bad_epochs >= es.patience
        self.save_checkpoint()
        self.reporter.epoch_end(epoch, self.cfg.train.epochs, splits, lr,
                                st.train_seconds + st.eval_seconds)
        self.tracking.log_epoch(epoch, st.step, splits, lr, st.train_images / st.train_seconds
                                if st.train_seconds else None)
        return splits, stop

    def evaluate_at_start(self) -> None:
        """``train.eval_at_start``: every split measured before the first step, as the
        epoch-0 rows of metrics.csv (an untrained 10-class model: about 90% top-1 error
        and loss ln 10 = 2.30). The train split is measured in eval mode, without
        augmentation; no random draw is used, so training itself is unchanged."""
        st, tl = self.state, self.train_loader
        t0 = time.perf_counter()
        train = InMemoryLoader(tl.data, self.cfg.train.eval_batch_size,
                               normalizer=tl.normalizer, resize=tl.resize,
                               channels_last=tl.channels_last, dtype=tl.dtype)
        splits = {name: evaluate(self.eval_net(name), loader, self.criterion, self.ks,
                                 self.device, self.autocast())
                  for name, loader in {"train": train, **self.eval_loaders}.items()}
        st.eval_seconds += time.perf_counter() - t0
        lr = self.optimizer.param_groups[0]["lr"]
        for name, m in splits.items():
            st.history.append({"epoch": 0, "split": name, **m, "lr": lr,
                               "time_s": round(st.train_seconds + st.eval_seconds, 3)})
        self.run.write_metrics(st.history)
        self.reporter.epoch_end(0, self.cfg.train.epochs, splits, lr, st.eval_seconds)
        self.tracking.log_epoch(0, st.step, splits, lr)

    # -------------------------------------------------------------------- helpers

    def weights(self) -> nn.Module:
        """What is evaluated and saved: the weight average once it has an update, else
        the model."""
        return self.ema.module if self.ema is not None and self.ema.active else self.model

    def eval_net(self, split: str) -> nn.Module:
        """The network that evaluates ``split``: the weights (compiled when the model is
        and no average is used), wrapped in test-time augmentation where asked."""
        net = self.net if self.weights() is self.model else self.weights()
        tta = self.cfg.train.tta
        views = getattr(tta, split, None) if split in ("val", "test") else None
        if tta.at == "last" and self.state.epoch + 1 < self.cfg.train.epochs:
            views = None  # only the final evaluation pays for the views
        return TTAModel(net, views, tta.pixels, tta.fill) if views else net

    def _divergence_message(self, epoch: int, value: float) -> str:
        lr = self.optimizer.param_groups[0]["lr"]
        hint = f"try a lower optim.lr (now {lr:g})"
        if self.cfg.data.normalize == "none":
            hint += " or data.normalize: channel"
        return (f"loss became {value} at epoch {epoch}, step {self.state.step}; {hint}. "
                f"The last checkpoint holds the weights before it.")

    def save_checkpoint(self) -> None:
        """Weights under a step-numbered name, then state.pt pointing at them (atomic).

        A kill at any moment leaves state.pt naming a complete weights file; older
        weight files are removed only after state.pt has moved on. Non-finite weights
        are never written.
        """
        if not ckpt.all_finite(self.model):
            raise Diverged(self._divergence_message(self.state.epoch + 1, float("nan")))
        folder = self.run.checkpoint_dir
        folder.mkdir(exist_ok=True)
        weights = f"model-{self.state.step:08d}.safetensors"
        ckpt.save_weights(self.model, folder / weights)
        loader = self.train_loader
        state = {
            "weights": weights,
            "loop": asdict(self.state),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "epoch_rng": self.epoch_rng if self.epoch_rng is not None
            else loader.generator.get_state(),  # type: ignore[union-attr]
            "shuffle_rng": loader.generator.get_state(),  # type: ignore[union-attr]
            "aug_rng": loader.aug_generator.get_state(),  # type: ignore[union-attr]
            "ema": self.ema.state_dict() if self.ema is not None else None,
        }
        ckpt.save_state(state, folder / "state.pt")
        for old in folder.glob("model-*.safetensors"):
            if old.name != weights:
                old.unlink(missing_ok=True)
        self.run.write_metrics(self.state.history)
        self.run.write_steps([*self.state.grad_rows, *self.state.step_rows])
        self.run.write_summary(epochs_done=self.state.epoch, steps=self.state.step)

    def load_checkpoint(self) -> None:
        """Restore model, optimizer, schedule, RNGs and loop state from checkpoint/."""
        folder = self.run.checkpoint_dir
        state = ckpt.load_state(folder / "state.pt")
        ckpt.load_weights(self.model, folder / state["weights"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["torch_rng"])
        if state["cuda_rng"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        self.epoch_rng = state["epoch_rng"]
        self.train_loader.generator.set_state(state["shuffle_rng"])  # type: ignore[union-attr]
        self.train_loader.aug_generator.set_state(state["aug_rng"])  # type: ignore[union-attr]
        if self.ema is not None and state.get("ema") is not None:
            self.ema.load_state_dict(state["ema"])
        self.state = LoopState(**state["loop"])

    def restore_best(self) -> bool:
        """Early stopping: put the best epoch's weights back. True when it did."""
        path = self.run.checkpoint_dir / "best.safetensors"
        if self.cfg.train.early_stopping is None or not path.exists():
            return False
        ckpt.load_weights(self.weights(), path)
        return True


def means(sums: list[float], count: int, ks: tuple[int, ...]) -> dict[str, float]:
    """Accumulator sums (loss sum, hits for each k) over ``count`` images -> mean loss
    and accuracies in [0, 1]."""
    n = max(count, 1)
    return {"loss": sums[0] / n, **{f"top{k}": h / n for k, h in zip(ks, sums[1:], strict=True)}}


def interval_row(sums: list[float], count: int, prev_sums: list[float], prev_count: int,
                 ks: tuple[int, ...]) -> dict[str, float] | None:
    """Train loss and top-k over the images since the last log point, from the running
    sums at both points (no extra host sync); ``prev_sums`` empty: since the epoch
    start. None when no image was added. The per-step curve of a report: an epoch-mean
    curve lags a 1-epoch run by half an epoch."""
    n = count - prev_count
    if n <= 0:
        return None
    prev = prev_sums or [0.0] * len(sums)
    m = means([a - b for a, b in zip(sums, prev, strict=True)], n, ks)
    return {f"train_{k}": v for k, v in m.items()}


def grad_norms(model: nn.Module) -> dict[str, float]:
    """Total and per-layer L2 norms of the current gradients (one host sync)."""
    layers: dict[str, list[torch.Tensor]] = {}
    for name, p in model.named_parameters():
        if p.grad is not None:
            layers.setdefault(name.rsplit(".", 1)[0], []).append(p.grad.detach())
    if not layers:
        return {"total": 0.0}
    per_layer = torch.stack([
        torch.linalg.vector_norm(torch.stack(torch._foreach_norm(gs))) for gs in layers.values()
    ])
    total = torch.linalg.vector_norm(per_layer)
    values = torch.cat([total[None], per_layer]).tolist()
    return dict(zip(["total", *layers], values, strict=True))


class _StopSignals(AbstractContextManager["_StopSignals"]):
    """First SIGINT/SIGTERM: finish the step, checkpoint, stop. Second: stop at once."""

    def __init__(self, trainer: Trainer) -> None:
        self.trainer = trainer
        self.previous: dict[int, Any] = {}

    def __enter__(self) -> _StopSignals:
        import threading

        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self.previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.trainer.stop_requested or self.trainer.evaluating:
            # second signal: stop now, the last checkpoint stays; while evaluating, the
            # first: end_epoch checkpoints the trained epoch (evaluating changes nothing)
            self.trainer.stop_requested = self.trainer.stop_requested or signum
            raise KeyboardInterrupt
        self.trainer.stop_requested = signum
        self.trainer.reporter.message(
            "stopping after this step (checkpoint follows); press Ctrl-C again to stop at once"
        )

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)
