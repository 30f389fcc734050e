"""Training throughput of convlab against its peers, on this machine, in one run.

For each case and batch size, the same model (same initial weights) and the same
optimizer (SGD, lr 0.01, Nesterov momentum 0.9, weight decay 5e-4) train on the same
data with:

- ``compute``       the compute bound: forward/backward/step over batches made beforehand,
                    already normalized, channels_last, in memory; nothing else
- ``convlab``       convlab's own loop, ``Trainer.train_epoch`` as built by ``make_trainer``:
                    in-memory uint8 gather, batched augmentation and normalization, loss and
                    top-1/top-5 accumulated on the device, the LR-schedule step and the
                    per-step divergence check
- ``dataloader-wN`` the canonical PyTorch + torchvision loop: a ``Dataset`` of PIL images
                    (``torchvision.datasets.MNIST`` for MNIST; for CIFAR-10 the same uint8
                    arrays wrapped in a Dataset that serves PIL images as torchvision's
                    CIFAR10 does), per-sample ``ToTensor``/``Normalize`` (plus
                    ``RandomCrop(32, padding=4)``/``RandomHorizontalFlip`` for CIFAR-10),
                    ``DataLoader(shuffle=True, num_workers=N)``, persistent workers for N>0
- ``lightning``     PyTorch Lightning's ``Trainer`` fitting a ``LightningModule`` with the
                    same model and optimizer on the faster of the two DataLoaders above;
                    logger, checkpointing, progress bar and model summary off
- ``lightning-defaults`` the same with the Trainer's defaults (logger, per-epoch
                    checkpoint, progress bar (to /dev/null), model summary) and
                    ``self.log("train_loss", ...)`` in ``training_step``, as tutorials write it
- ``dataloader-w0-nchw`` (``--nchw``) the DataLoader loop without channels_last, as
                    tutorials write it; every other method runs model and input channels_last

Every method first warms up (``--warmup`` batches; the DataLoaders and Lightning one full
epoch, which also picks Lightning's DataLoader), then the methods are timed in turns:
round 1 times one epoch of each method, round 2 again, ... (``--repeats`` rounds), so a
slow drift of the machine's speed affects all methods alike. An epoch is ``--images``
training images (``--images-small`` at batch sizes <= 8). Each measurement waits for an
idle machine and is redone when other processes used the CPUs meanwhile (see
``_common.py``). The table gives the median images/s and the spread between repeats.
torch uses ``--threads`` threads; nothing else of ours runs during a measurement except a
method's own DataLoader workers.

``python benchmarks/bench_throughput.py --quick`` is a smoke run of a few minutes.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import (  # noqa: E402
    MAX_OTHERS,
    CpuWatch,
    Timing,
    data_root,
    machine,
    table,
    wait_quiet,
)

LR, MOMENTUM, WEIGHT_DECAY = 0.01, 0.9, 5e-4

CASES: dict[str, dict[str, Any]] = {
    # MNIST, no augmentation, the network of the mnist-quick recipe.
    "mnist": {
        "data": {"dataset": "mnist", "normalize": "channel"},
        "model": {"name": "mnist-fast"},
        "what": "MNIST 1x28x28, no augmentation, model mnist-fast",
    },
    # Real CIFAR-10 images (decoded from cifar10-jpeg.zip by convlab's cifar10 source and
    # cached after the first time), PW1, random crop (padding 4) + horizontal flip.
    "cifar": {
        "data": {"dataset": "cifar10", "normalize": "channel",
                 "augment": {"crop_padding": 4, "flip": True}},
        "model": {"name": "pw1"},
        "what": "CIFAR-10 3x32x32 (real images from cifar10-jpeg.zip), crop 4 + flip, "
                "model pw1",
    },
}
METHODS = ("compute", "convlab", "dataloader-w0", "dataloader-w2", "lightning",
           "lightning-defaults", "dataloader-w0-nchw")
DEFAULT_METHODS = METHODS[:6]


# ------------------------------------------------------------------------ shared setup


@dataclass
class Setup:
    """One case at one batch size: config, data (in memory, uint8), initial weights."""

    case: str
    batch_size: int
    images: int
    threads: int
    warmup: int
    cfg: Any  # ExperimentConfig
    data: Any  # PreparedData
    init_state: dict[str, torch.Tensor]
    mean: list[float]
    std: list[float]
    tmp: Path


def make_setup(case: str, batch_size: int, images: int, a: argparse.Namespace,
               tmp: Path) -> Setup:
    from convlab.config import load_config
    from convlab.data.pipeline import prepare_data
    from convlab.models import build_model

    spec = CASES[case]
    cfg = load_config({
        "name": f"bench-{case}",
        "data": {**spec["data"], "subset": {"train": images, "test": 100}},
        "model": spec["model"],
        "optim": {"name": "sgd", "lr": LR, "momentum": MOMENTUM, "nesterov": True,
                  "weight_decay": WEIGHT_DECAY},
        "schedule": {"name": "constant"},
        "train": {"epochs": 1_000_000, "batch_size": batch_size, "threads": a.threads},
    })
    torch.set_num_threads(a.threads)
    data = prepare_data(cfg.data, torch.device("cpu"))
    torch.manual_seed(0)
    model = build_model(cfg.model, data.shape, data.num_classes)
    norm = data.normalizer
    return Setup(case, batch_size, images, a.threads, a.warmup, cfg, data,
                 {k: v.clone() for k, v in model.state_dict().items()},
                 norm.mean.tolist(), norm.std.tolist(), tmp)


def fresh_model(s: Setup, channels_last: bool = True) -> nn.Module:
    """The case's model with the shared initial weights."""
    from convlab.models import build_model

    model = build_model(s.cfg.model, s.data.shape, s.data.num_classes)
    model.load_state_dict(s.init_state)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model.train()


def sgd(model: nn.Module) -> torch.optim.Optimizer:
    """The optimizer of every method. ``foreach=True`` as convlab uses it (on CPU torch
    defaults to a slower per-tensor loop; same arithmetic), so that the comparison is
    about data and loop overhead, not about the optimizer's implementation."""
    return torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM, nesterov=True,
                           weight_decay=WEIGHT_DECAY, foreach=True)


def step_loop(model: nn.Module, opt: torch.optim.Optimizer,
              batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
              channels_last: bool, limit: int | None = None) -> None:
    """The canonical training step over ``batches`` (at most ``limit`` of them)."""
    for i, (x, y) in enumerate(batches):
        if limit is not None and i >= limit:
            break
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()


# ------------------------------------------------------------------------------ methods


class Method:
    """One way to train: ``prepare`` (build and warm up), then one ``epoch`` per call.

    ``epoch`` may return the seconds to count (Lightning: the epoch alone, not each
    ``fit``'s set-up); otherwise the whole call is timed.
    """

    name = ""

    def __init__(self, s: Setup) -> None:
        self.s = s
        self.timing = Timing()

    def prepare(self) -> None: ...

    def epoch(self) -> float | None:
        raise NotImplementedError

    def close(self) -> None: ...


class Compute(Method):
    """Forward/backward/step on pre-made, normalized, channels_last batches in memory."""

    name = "compute"

    def prepare(self) -> None:
        from convlab.data.pipeline import InMemoryLoader

        s = self.s
        loader = InMemoryLoader(s.data.train, s.batch_size, normalizer=s.data.normalizer,
                                shuffle=True, augmenter=s.data.augmenter, channels_last=True,
                                generator=torch.Generator().manual_seed(0),
                                aug_generator=torch.Generator().manual_seed(1))
        self.batches = list(loader)  # made (augmented once, normalized) before any timing
        self.model = fresh_model(s)
        self.opt = sgd(self.model)
        step_loop(self.model, self.opt, self.batches, False, s.warmup)

    def epoch(self) -> None:
        step_loop(self.model, self.opt, self.batches, False)


class Convlab(Method):
    """convlab's training loop: one ``Trainer.train_epoch`` per measurement."""

    name = "convlab"

    def prepare(self) -> None:
        from convlab.runs import Run
        from convlab.train.progress import Reporter
        from convlab.train.runner import make_trainer

        s = self.s
        run = Run.create(s.tmp / "runs", s.cfg.name, "bench")
        self.trainer = make_trainer(s.cfg, s.data, fresh_model(s, channels_last=False),
                                    torch.device("cpu"), run, Reporter())
        # warm-up: the first ``warmup`` batches of one epoch
        loader, full = self.trainer.train_loader, s.data.train
        n = s.warmup * s.batch_size
        loader.data = type(full)(full.images[:n], full.labels[:n])
        try:
            self.epoch()
        finally:
            loader.data = full

    def epoch(self) -> None:
        st = self.trainer.state
        self.trainer.train_epoch(st.epoch + 1)
        st.epoch += 1
        st.batch_in_epoch = 0


class _PILDataset(torch.utils.data.Dataset):
    """uint8 (N, C, H, W) arrays served as PIL images, as torchvision's CIFAR10 does."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, transform: Callable) -> None:
        self.images = images.permute(0, 2, 3, 1).contiguous().numpy()  # (N, H, W, C)
        self.labels = labels.tolist()
        self.transform = transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        from PIL import Image

        img = self.images[i]
        pil = Image.fromarray(img[:, :, 0], mode="L") if img.shape[2] == 1 else Image.fromarray(img)
        return self.transform(pil), self.labels[i]


def _mnist_raw_copy(tmp: Path) -> Path:
    """torchvision's MNIST reads unpacked IDX files; the shared copy holds only .gz."""
    raw = tmp / "tv" / "MNIST" / "raw"
    if not raw.exists():
        raw.mkdir(parents=True)
        src = Path(data_root()) / "MNIST" / "raw"
        for gz in src.glob("*-ubyte.gz"):
            with gzip.open(gz) as f, open(raw / gz.name[:-3], "wb") as out:
                shutil.copyfileobj(f, out)
    return tmp / "tv"


def make_dataset(s: Setup) -> torch.utils.data.Dataset:
    """The torchvision-style dataset of the case, ``s.images`` training images."""
    import torchvision
    from torchvision import transforms as T

    norm = T.Normalize(s.mean, s.std)
    if s.case == "mnist":
        ds = torchvision.datasets.MNIST(str(_mnist_raw_copy(s.tmp)), train=True,
                                        transform=T.Compose([T.ToTensor(), norm]))
        return torch.utils.data.Subset(ds, range(s.images))
    aug = CASES[s.case]["data"]["augment"]
    tf = T.Compose([T.RandomCrop(s.data.shape[1], padding=aug["crop_padding"]),
                    T.RandomHorizontalFlip(), T.ToTensor(), norm])
    return _PILDataset(s.data.train.images, s.data.train.labels, tf)


def make_loader(s: Setup, workers: int) -> torch.utils.data.DataLoader:
    return torch.utils.data.DataLoader(
        make_dataset(s), batch_size=s.batch_size, shuffle=True, num_workers=workers,
        persistent_workers=workers > 0, generator=torch.Generator().manual_seed(0),
    )


class DataLoaderLoop(Method):
    """The canonical loop over a torchvision-style DataLoader."""

    def __init__(self, s: Setup, workers: int, channels_last: bool = True) -> None:
        super().__init__(s)
        self.workers, self.channels_last = workers, channels_last
        self.name = f"dataloader-w{workers}" + ("" if channels_last else "-nchw")
        self.warm_seconds = float("inf")

    def prepare(self) -> None:
        self.loader = make_loader(self.s, self.workers)
        self.model = fresh_model(self.s, self.channels_last)
        self.opt = sgd(self.model)
        t0 = time.perf_counter()
        self.epoch()  # warm-up: one full epoch (starts the persistent workers)
        self.warm_seconds = time.perf_counter() - t0

    def epoch(self) -> None:
        step_loop(self.model, self.opt, self.loader, self.channels_last)

    def close(self) -> None:
        del self.loader  # stops persistent workers


class LightningFit(Method):
    """Lightning: a ``Trainer(max_epochs=1).fit`` per measurement on the same module and
    DataLoader (persistent workers survive between fits); the time counted runs from
    ``on_train_epoch_start`` to ``on_train_end`` (after the epoch's checkpoint, when on)."""

    def __init__(self, s: Setup, loader: torch.utils.data.DataLoader, note: str,
                 defaults: bool) -> None:
        super().__init__(s)
        self.loader, self.defaults = loader, defaults
        self.name = "lightning-defaults" if defaults else "lightning"
        self.timing.note = note

    def prepare(self) -> None:
        import lightning as L

        model, defaults, threads = fresh_model(self.s), self.defaults, self.s.threads

        class Module(L.LightningModule):
            def __init__(self) -> None:
                super().__init__()
                self.model = model

            def training_step(self, batch: tuple[torch.Tensor, torch.Tensor],
                              i: int) -> torch.Tensor:
                x, y = batch
                x = x.contiguous(memory_format=torch.channels_last)
                loss = F.cross_entropy(self.model(x), y)
                if defaults:
                    self.log("train_loss", loss, prog_bar=True)
                return loss

            def configure_optimizers(self) -> torch.optim.Optimizer:
                return sgd(self.model)

        class EpochTimer(L.Callback):
            seconds = 0.0

            def on_train_epoch_start(self, trainer: L.Trainer, module: Any) -> None:
                self.t0 = time.perf_counter()

            def on_train_end(self, trainer: L.Trainer, module: Any) -> None:
                EpochTimer.seconds = time.perf_counter() - self.t0

        self.module, self.timer_cls, self.L = Module(), EpochTimer, L
        self.fits = 0
        self.epoch()  # warm-up: one full epoch
        torch.set_num_threads(threads)

    def epoch(self) -> float:
        L = self.L
        kw: dict[str, Any] = {"default_root_dir": str(self.s.tmp / "lightning")}
        if not self.defaults:
            kw.update(logger=False, enable_checkpointing=False, enable_progress_bar=False,
                      enable_model_summary=False)
        trainer = L.Trainer(accelerator="cpu", devices=1, max_epochs=1,
                            callbacks=[self.timer_cls()], num_sanity_val_steps=0, **kw)
        with open(os.devnull, "w") as null, contextlib.redirect_stderr(null), \
                contextlib.redirect_stdout(null):
            trainer.fit(self.module, train_dataloaders=self.loader)
        self.fits += 1
        return self.timer_cls.seconds


def _quiet_lightning() -> None:
    """Lightning's info lines and advice (it sets its loggers to INFO when imported)."""
    import logging
    import warnings

    import lightning  # noqa: F401

    for name in ("lightning", "lightning.pytorch", "lightning.fabric", "pytorch_lightning"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*litlogger.*")


# ---------------------------------------------------------------------------- driver


@dataclass
class Row:
    case: str
    bs: int
    images: int
    res: dict[str, Timing] = field(default_factory=dict)


def measure(m: Method) -> None:
    """One clean measurement of one epoch of ``m`` (redone while others compete)."""
    tries = 0
    while True:
        tries += 1
        wait_quiet()
        w = CpuWatch()
        counted = m.epoch()
        wall, own, others = w.stop()
        if others <= MAX_OTHERS or tries >= 4:
            m.timing.add(counted if counted is not None else wall, own, others)
            m.timing.discarded += tries - 1
            return


def run_point(case: str, bs: int, a: argparse.Namespace, tmp: Path) -> Row:
    images = a.images_small if bs <= 8 else a.images
    s = make_setup(case, bs, images, a, tmp)
    methods: list[Method] = []
    loaders: dict[int, DataLoaderLoop] = {}
    for name in a.methods:
        if name == "compute":
            methods.append(Compute(s))
        elif name == "convlab":
            methods.append(Convlab(s))
        elif name.startswith("dataloader-w"):
            w = int(name[len("dataloader-w")])
            dl = DataLoaderLoop(s, w, channels_last=not name.endswith("nchw"))
            methods.append(dl)
            if not name.endswith("nchw"):
                loaders[w] = dl
    for m in methods:
        m.prepare()
    for name in a.methods:
        if name.startswith("lightning"):
            if loaders:  # the faster DataLoader, judged on the warm-up epochs
                best = min(loaders.values(), key=lambda d: d.warm_seconds)
                loader, note = best.loader, f"w{best.workers}"
            else:
                loader, note = make_loader(s, 0), "w0"
            lm = LightningFit(s, loader, note, defaults=name == "lightning-defaults")
            lm.prepare()
            methods.append(lm)
    for r in range(a.repeats):
        for m in methods:
            measure(m)
            t = m.timing
            print(f"  {case} bs={bs:<4d} round {r + 1} {m.name:20s} "
                  f"{images / t.seconds[-1]:9.0f} img/s  ({t.seconds[-1]:.3f}s, "
                  f"others {t.others[-1]:.2f})", flush=True)
    row = Row(case, bs, images)
    for m in methods:
        row.res[m.name] = m.timing
        m.close()
    return row


def report(rows: list[Row], methods: list[str]) -> str:
    out = []
    for case in dict.fromkeys(r.case for r in rows):
        out.append(f"\n### {case}: {CASES[case]['what']}\n")
        out.append("images/s (median of the rounds, ± spread between them):\n")
        heads = ["bs", "images/epoch"] + methods
        body = []
        case_rows = [r for r in rows if r.case == case]
        for r in case_rows:
            cells = [str(r.bs), f"{r.images:,}"]
            for m in methods:
                t = r.res[m]
                note = f" ({t.note})" if t.note else ""
                cells.append(f"{r.images / t.median:,.0f} ±{100 * t.spread:.0f}%{note}")
            body.append(cells)
        out.append(table(heads, body))
        if "convlab" in methods:
            others = [m for m in methods if m != "convlab"]
            out.append("\nconvlab's speed relative to each (epoch time of the other / "
                       "epoch time of convlab; > 1: convlab is faster):\n")
            ratio_rows = [[str(r.bs)] + [f"{r.res[m].median / r.res['convlab'].median:.2f}x"
                                         for m in others] for r in case_rows]
            out.append(table(["bs"] + [f"vs {m}" for m in others], ratio_rows))
        worst = max(t.max_others for r in case_rows for t in r.res.values())
        redone = sum(t.discarded for r in case_rows for t in r.res.values())
        out.append(f"\nlargest CPU share taken by other processes during a kept measurement: "
                   f"{worst:.2f}; measurements redone because of others: {redone}")
    return "\n".join(out)


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("--cases", default="mnist,cifar", help="comma list of: " + ", ".join(CASES))
    p.add_argument("--batch-sizes", help="comma list (default 2,64,256)")
    p.add_argument("--methods", help="comma list of: " + ", ".join(METHODS)
                   + " (default: all but dataloader-w0-nchw)")
    p.add_argument("--nchw", action="store_true",
                   help="also time the DataLoader loop without channels_last (0 workers)")
    p.add_argument("--images", type=int, help="training images per epoch (default 20,000)")
    p.add_argument("--images-small", type=int, default=2_000,
                   help="training images per epoch at batch sizes <= 8")
    p.add_argument("--repeats", type=int, help="timed rounds (default 3)")
    p.add_argument("--warmup", type=int, help="warm-up batches (default 30)")
    p.add_argument("--threads", type=int, default=2, help="torch threads")
    p.add_argument("--quick", action="store_true",
                   help="smoke run: defaults of bs 64, 4,000 images, 1 round, 10 warm-up "
                        "batches, no lightning-defaults (explicit flags still win)")
    p.add_argument("--markdown", help="also write the tables to this file")
    a = p.parse_args(argv)
    defaults = {"batch_sizes": "2,64,256", "images": 20_000, "repeats": 3, "warmup": 30,
                "methods": ",".join(DEFAULT_METHODS)}
    if a.quick:
        defaults.update(batch_sizes="64", images=4000, repeats=1, warmup=10,
                        methods=",".join(DEFAULT_METHODS[:5]))
    for k, v in defaults.items():
        if getattr(a, k) is None:
            setattr(a, k, v)
    a.cases = [c for c in a.cases.split(",") if c]
    a.batch_sizes = [int(b) for b in str(a.batch_sizes).split(",")]
    a.methods = [m for m in a.methods.split(",") if m]
    if a.nchw and "dataloader-w0-nchw" not in a.methods:
        a.methods.append("dataloader-w0-nchw")
    for m in a.methods:
        if m not in METHODS:
            p.error(f"--methods: unknown {m!r}; expected some of {', '.join(METHODS)}")
    for c in a.cases:
        if c not in CASES:
            p.error(f"--cases: unknown {c!r}; expected some of {', '.join(CASES)}")
    return a


def main(argv: list[str] | None = None) -> None:
    a = parse(argv)
    data_root()
    if any(m.startswith("lightning") for m in a.methods):
        _quiet_lightning()
    torch.set_num_threads(a.threads)
    facts = machine()
    header = "  ".join(f"{k}: {v}" for k, v in facts.items())
    print(header, flush=True)
    rows: list[Row] = []
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="convlab-bench-") as tmp:
        for case in a.cases:
            for bs in a.batch_sizes:
                rows.append(run_point(case, bs, a, Path(tmp)))
    text = (f"{header}\n{report(rows, a.methods)}\n\n"
            f"(benchmark took {time.perf_counter() - t0:.0f}s)\n")
    print(text)
    if a.markdown:
        Path(a.markdown).write_text(text)


if __name__ == "__main__":
    main()
