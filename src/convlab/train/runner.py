"""From a config to a finished run folder: build data, model and optimizer, then fit."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import subprocess
import time
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

import convlab
from convlab.config import ExperimentConfig, load_config
from convlab.data.imagefolder import decode_progress
from convlab.data.pipeline import InMemoryLoader, PreparedData, prepare_data
from convlab.errors import ConfigError, RunError
from convlab.models import build_model, normalizes_own_input, parameter_counts
from convlab.runs import Run
from convlab.track import check_trackers, start_tracking
from convlab.train import checkpoint as ckpt
from convlab.train.loop import EpochHook, LoopState, Trainer
from convlab.train.metrics import metric_ks
from convlab.train.optim import build_optimizer, build_scheduler
from convlab.train.progress import Reporter, make_reporter
from convlab.usercode import short_name


def config_hash(cfg: ExperimentConfig) -> str:
    """SHA-256 of the resolved config (:meth:`ExperimentConfig.config_hash`)."""
    return cfg.config_hash()


def resolve_match_params(cfg: ExperimentConfig) -> tuple[ExperimentConfig, dict[str, Any]]:
    """Apply ``match_params``: the model setting whose parameter count is nearest the
    reference's. Returns the config to train (its model settings fixed, ``match_params``
    cleared so it reruns as is) and a record of the match for the summary."""
    mp = cfg.match_params
    if mp is None:
        return cfg, {}
    from convlab.data import input_spec
    from convlab.models.budget import match_params

    shape, classes = input_spec(cfg.data)
    if isinstance(mp.reference, int):
        target = mp.reference
    else:
        target = reference_params(mp.reference, shape, classes)
    best = match_params({"name": cfg.model.name, **cfg.model.settings}, mp.vary, target,
                        shape, classes)[0]
    raw = cfg.to_dict()
    raw["model"] = {"name": cfg.model.name, **best.settings}
    raw["match_params"] = None
    record = {"reference": mp.reference, "vary": mp.vary, "value": best.value,
              "target": target, "params": best.params, "rel_diff": round(best.rel_diff, 5)}
    return ExperimentConfig.model_validate(raw), record


def reference_params(reference: str, shape: tuple[int, int, int], classes: int) -> int:
    """Parameters of a reference model (a name, ``file.py:Net``, or an experiment file or
    bundled name) built for this experiment's input, counted on the meta device."""
    from convlab.config import ConfigError
    from convlab.models import build, get_spec, resolve_settings

    try:
        name, settings = reference, resolve_settings(reference, {})
        get_spec(reference)
    except ValueError:
        try:
            ref_cfg = load_config(reference)
        except ConfigError as e:
            raise ConfigError(f"match_params.reference {reference!r}: neither a model nor an "
                              f"experiment ({e})") from None
        name, settings = ref_cfg.model.name, ref_cfg.model.settings
    with torch.device("meta"):
        return sum(p.numel() for p in build(name, settings, shape, classes, check=False)
                   .parameters())


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"train.device: {name!r} requested but CUDA is not available")
    return device


def physical_cores() -> int:
    """Cores this process may run on (affinity-aware); torch threads are set to this."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def setup_runtime(cfg: ExperimentConfig) -> torch.device:
    """Threads, seeds and determinism, before anything random happens."""
    torch.set_num_threads(cfg.train.threads or physical_cores())
    torch.manual_seed(cfg.seed)
    if cfg.train.deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    return pick_device(cfg.train.device)


def uses_conv(model: nn.Module) -> bool:
    return any(isinstance(m, nn.Conv2d) for m in model.modules())


def cpu_has_native_bf16() -> bool:
    """Whether this CPU runs bf16 convolutions natively (oneDNN on AVX512-BF16 or AMX),
    where bf16 autocast trains conv nets ~2-3x faster than fp32 (benchmarks/RESULTS.md)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a build without oneDNN
        return False


def autocast_factory(cfg: ExperimentConfig, device: torch.device) -> Any:
    """bf16 autocast on CUDA (``precision: auto``/``bf16``) or on the CPU when asked
    (``bf16``); else a no-op context."""
    use_bf16 = cfg.train.precision == "bf16" or (
        cfg.train.precision == "auto" and device.type == "cuda"
    )
    if use_bf16:
        if device.type == "cpu" and not cpu_has_native_bf16():
            warnings.warn("train.precision: bf16 on a CPU without native bf16 (AVX512-BF16 "
                          "or AMX): expect it slower than fp32", stacklevel=2)
        return lambda: torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext


def build_model_for(cfg: ExperimentConfig, summary: dict[str, Any]) -> nn.Module:
    """The model of a run, shaped by the input spec recorded in its summary."""
    shape = tuple(summary["input_shape"])
    return build_model(cfg.model, shape, int(summary["num_classes"]))  # type: ignore[arg-type]


def environment(cfg: ExperimentConfig, device: torch.device, data: PreparedData) -> dict[str, Any]:
    """Provenance written to env.json."""
    from importlib.metadata import PackageNotFoundError, version

    try:  # the installed version, without paying for importing torchvision (~0.5 s)
        tv_version: str | None = version("torchvision")
    except PackageNotFoundError:  # pragma: no cover
        tv_version = None
    return {
        "convlab": convlab.__version__,
        "torch": torch.__version__,
        "torchvision": tv_version,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda"
        else platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
        "seed": cfg.seed,
        "deterministic": cfg.train.deterministic,
        "git": git_revision(),
        "data": {
            "location": data.location,
            "normalize": getattr(data.normalizer, "mode", None),
            "fingerprint": data.fingerprint,
            "train": len(data.train),
            "val": len(data.val) if data.val is not None else 0,
            "test": len(data.test),
            "shape": list(data.shape),
            "classes": data.classes,
        },
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def git_revision() -> str | None:
    """The git commit of the working directory (with ``-dirty``), when there is one."""
    try:
        out = subprocess.run(
            ["git", "describe", "--always", "--dirty", "--abbrev=12"],
            capture_output=True, text=True, timeout=5, check=True,
        )
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def foreach_groups(params: list[Any]) -> list[Any]:
    """Parameter groups asking for the multi-tensor (``foreach``) optimizer update.

    On CPU torch defaults to a loop of a few ops per parameter tensor, each allocating a
    temporary; the foreach update does the same arithmetic (bit-identical weights,
    checked for SGD, Adam and AdamW) in a few multi-tensor calls. On the 2-core CPU a
    Nesterov SGD step of pw1 (CIFAR-10) takes 1.2 ms instead of 3.5 ms, so a batch-2
    training step takes 4.3 ms instead of 6.6 ms. A group that names ``foreach`` keeps it.
    """
    if not params:
        return params  # the optimizer's own "empty parameter list" error
    if isinstance(params[0], dict):
        return [{"foreach": True, **g} for g in params]
    return [{"params": params, "foreach": True}]


def make_trainer(
    cfg: ExperimentConfig, data: PreparedData, model: nn.Module, device: torch.device,
    run: Run, reporter: Reporter,
) -> Trainer:
    """Loaders, optimizer, schedule, loss: everything the loop needs."""
    channels_last = cfg.train.channels_last
    if channels_last is None:
        channels_last = uses_conv(model)
    model = model.to(device)
    if channels_last:
        # 2.6x faster on this CPU (docs/architecture.md, "Performance")
        model = model.to(memory_format=torch.channels_last)
    if cfg.optim.groups:
        if hasattr(model, "param_groups"):
            raise ConfigError("optim.groups: this model sets its own parameter groups "
                              "(backbone_lr); use one or the other")
        from convlab.optim.groups import param_groups

        trainable: list[Any] = param_groups(model, cfg.optim.groups, cfg.optim.lr,
                                            cfg.optim.weight_decay)
    elif hasattr(model, "param_groups"):  # e.g. a separate backbone learning rate
        trainable = model.param_groups(cfg.optim.lr)
    else:  # frozen parameters stay out of the optimizer
        trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = build_optimizer(foreach_groups(trainable), cfg.optim)
    loader_kw = dict(normalizer=data.normalizer, resize=data.resize, channels_last=channels_last)
    shuffle_gen = torch.Generator().manual_seed(cfg.seed)
    aug_gen = torch.Generator(device=device).manual_seed(cfg.seed + 1)
    train_loader = InMemoryLoader(
        data.train, cfg.train.batch_size, shuffle=True, augmenter=data.augmenter,
        generator=shuffle_gen, aug_generator=aug_gen, **loader_kw,  # type: ignore[arg-type]
    )
    eval_loaders = {
        name: InMemoryLoader(split, cfg.train.eval_batch_size, **loader_kw)  # type: ignore[arg-type]
        for name, split in (("val", data.val), ("test", data.test)) if split is not None
    }
    scheduler = build_scheduler(optimizer, cfg.schedule, cfg.train.epochs, len(train_loader),
                                cfg.optim.lr)
    net = torch.compile(model) if cfg.train.compile else model
    ema = None
    if cfg.train.ema is not None:
        from convlab.train.averaging import WeightAverage

        e = cfg.train.ema
        ema = WeightAverage(model, e.decay, e.every, e.start_epoch, e.lookahead, e.ramp,
                            total_steps=cfg.train.epochs * len(train_loader))
    return Trainer(
        cfg=cfg, model=model, net=net, optimizer=optimizer, scheduler=scheduler, ema=ema,
        criterion=nn.CrossEntropyLoss(label_smoothing=cfg.train.label_smoothing),
        train_loader=train_loader, eval_loaders=eval_loaders, ks=metric_ks(data.num_classes),
        device=device, autocast=autocast_factory(cfg, device), run=run, reporter=reporter,
    )


def run_experiment(
    config: ExperimentConfig | str | Path | dict[str, Any],
    overrides: list[str] | tuple[str, ...] = (),
    runs_dir: str | Path | None = None,
    quiet: bool = False,
    reporter: Reporter | None = None,
    epoch_hook: EpochHook | None = None,
    *,
    model: nn.Module | Any = None,
) -> Run:
    """Train one experiment end to end and return its (closed) run folder.

    ``epoch_hook`` is asked after every epoch whether to stop (see ``loop.EpochHook``).
    ``model``: an ``nn.Module`` (trained as it is) or a callable returning one (called
    with the dataset parameters its signature names); it takes precedence over the
    config's ``model`` section, which then records the object's class.
    """
    t_start = time.perf_counter()
    cfg = config if isinstance(config, ExperimentConfig) else load_config(config, overrides)
    if model is not None:
        cfg, model_from = with_model_object(cfg, model)
    else:
        model_from = "config"
    tag = config_hash(cfg)[:8]  # of the config as given (match_params unresolved)
    cfg, matched = resolve_match_params(cfg)
    check_trackers(t.name for t in cfg.tracking)  # a missing package: before any work
    device = setup_runtime(cfg)
    reporter = reporter or make_reporter(quiet)
    with decode_progress(reporter.data_progress):  # a line while images are decoded
        data = prepare_data(cfg.data, device, normalizes_own_input(cfg.model))
    net = model_for_data(cfg, model, data.shape, data.num_classes)
    counts = parameter_counts(net)
    params = counts["params"]
    run = Run.create(runs_dir, cfg.name, tag)
    reporter = reporter or make_reporter(quiet)
    try:
        run.write_text("config.yaml", cfg.to_yaml())
        env = environment(cfg, device, data)
        env["user_code"] = keep_user_code(cfg, run, skip_model=model_from == "object")
        run.write_text("env.json", json.dumps(env, indent=2) + "\n")
        ckpt.save_tensors(data.normalizer.tensors(), run.normalizer_path)  # type: ignore[attr-defined]
        run.write_summary(
            status="running", experiment=cfg.name, config_hash=config_hash(cfg),
            model=cfg.model.name, **counts, input_shape=list(data.shape),
            num_classes=data.num_classes, epochs=cfg.train.epochs, epochs_done=0,
            device=str(device), model_from=model_from,
            **({"match_params": matched} if matched else {}),
        )
    except OSError as e:
        raise RunError(f"{run.path}: cannot write the run folder ({e.strerror or e})") from None
    if model_from == "object":
        reporter.message(
            "note: the model was passed as an object of a class a fresh process cannot import; "
            "reopen this run in Python with convlab.load_run(path, model=...)")
    trainer = make_trainer(cfg, data, net, device, run, reporter)
    fitted = fit_to_training_data(trainer, data)
    if fitted:
        run.write_summary(fitted_to_data=fitted)
    trainer.epoch_hook = epoch_hook
    trainer.tracking = start_tracking(cfg, run)
    reporter.start(
        f"{cfg.name}: {short_name(cfg.model.name)} ({params:,} parameters) on "
        f"{short_name(str(cfg.data.dataset))} "
        f"({split_sizes(data)}) on {device}; run {run.path}"
    )
    return _fit_and_close(trainer, run, reporter, t_start, setup_s=time.perf_counter() - t_start)


def fitting_sample(n: int, limit: int) -> torch.Tensor:
    """Sorted indices of a fixed random sample of ``limit`` of ``n`` training images: the
    split is stored in class order (an image folder's is), so its first images would be
    one or two classes only."""
    pick = torch.randperm(n, generator=torch.Generator().manual_seed(0))
    return pick[:limit].sort().values


def fit_to_training_data(trainer: Trainer, data: PreparedData, limit: int = 10_000) -> list[str]:
    """Data-dependent initialisation before the first step of a new run: every module
    with a ``fit_to_data(images)`` method (a patch-whitening layer) sees up to ``limit``
    training images as the model sees them (normalized, resized; never augmented, never
    val or test), drawn at random from the whole split. Returns the names of the modules fitted."""
    from convlab.models.whitening import fit_data_dependent

    if not any(callable(getattr(m, "fit_to_data", None)) for m in trainer.model.modules()):
        return []
    sample = data.train.take(fitting_sample(len(data.train), limit))
    loader = InMemoryLoader(sample, 1000, normalizer=data.normalizer,  # type: ignore[arg-type]
                            resize=data.resize, channels_last=False)
    images = torch.cat([x.float() for x, _ in loader])
    return fit_data_dependent(trainer.model, images)


def split_sizes(data: PreparedData) -> str:
    """``"2,000 train / 500 val / 10,000 test"`` (val only when there is one)."""
    parts = [f"{len(data.train):,} train"]
    if data.val is not None and len(data.val):
        parts.append(f"{len(data.val):,} val")
    parts.append(f"{len(data.test):,} test")
    return " / ".join(parts)


def with_model_object(cfg: ExperimentConfig, model: Any) -> tuple[ExperimentConfig, str]:
    """The config of a run given a model object or callable: its ``model`` section names
    the object's class (``module:Class``). Returns the config and ``model_from``:
    ``"import"`` when a fresh process can import that class (the CLI can reopen the run),
    else ``"object"``."""
    from convlab.config import ModelConfig
    from convlab.models import importable_ref

    target = type(model) if isinstance(model, nn.Module) else model
    if not callable(target):
        raise ConfigError(f"model=: expected an nn.Module or a callable returning one, got "
                          f"{type(model).__name__}")
    ref, importable = importable_ref(target)
    cfg = cfg.model_copy(update={"model": ModelConfig.for_object(ref)})
    return cfg, "import" if importable else "object"


def model_for_data(
    cfg: ExperimentConfig, model: Any, shape: tuple[int, int, int], classes: int
) -> nn.Module:
    """The network to train: the config's model, or a given object / callable, checked
    by a dry forward pass to take ``shape`` and return ``classes`` scores."""
    from convlab.models import check_shapes, dataset_params
    from convlab.usercode import call_user, check_kwargs

    if model is None:
        return build_model(cfg.model, shape, classes)
    if not isinstance(model, nn.Module):
        kwargs = check_kwargs(model, {}, f"model {cfg.model.name!r}",
                              provided=dataset_params(shape, classes), optional=())
        model = call_user(model, kwargs, f"building model {cfg.model.name}")
        if not isinstance(model, nn.Module):
            raise ConfigError(f"model=: the callable returned a {type(model).__name__}; "
                              f"expected an nn.Module")
    check_shapes(model, shape, classes, user=True)
    return model


def keep_user_code(
    cfg: ExperimentConfig, run: Run, skip_model: bool = False
) -> list[dict[str, Any]]:
    """Copy the user files the config names into ``code/`` of the run folder and return
    their records for env.json (original path, SHA-256, copy): a fresh process re-imports
    the original while its hash matches, else the copy (see ``Run.user_code``)."""
    from convlab.io import atomic_write
    from convlab.usercode import is_file_target, load_object, sha256_file

    records: list[dict[str, Any]] = []
    seen: set[str] = set()
    for ref in cfg.user_refs():
        if skip_model and ref == cfg.model.name:
            continue  # a model object no process can import again: nothing to copy
        if ":" in ref:
            file = load_object(ref).file
        elif is_file_target(ref):
            file = Path(ref)
        else:  # an imported module: kept only when it was a local file
            from convlab.usercode import import_user_module

            src = getattr(import_user_module(ref), "__file__", None)
            file = Path(src) if src and "site-packages" not in src else None
        if file is None or str(file) in seen:
            continue
        seen.add(str(file))
        copy = Path("code") / (file.name if file.name not in {Path(r["copy"]).name
                                                              for r in records}
                               else f"{len(records)}-{file.name}")
        (run.path / "code").mkdir(exist_ok=True)
        atomic_write(run.path / copy, file.read_bytes())
        records.append({"ref": ref, "file": str(file), "sha256": sha256_file(file),
                         "copy": str(copy)})
    return records


def resume_run(
    path: str | Path, quiet: bool = False, reporter: Reporter | None = None,
    epoch_hook: EpochHook | None = None, threads: int | None = None, *, model: Any = None,
) -> Run:
    """Continue an interrupted (or killed) run from its latest checkpoint.

    The user code the run names is imported as ``Run.user_code`` says (the original
    while unchanged, else the run's copy). ``model``: the model object again, for a run
    that was given one of a class a fresh process cannot import.

    ``threads`` overrides the run's ``train.threads`` for this process only (a sweep
    resumes a trial with its own share of the cores); the result does not depend on it
    beyond floating-point summation order.
    """
    t_start = time.perf_counter()
    run = Run.open(path)
    if run.status == "completed":
        raise RunError(f"{run.path}: already completed; nothing to resume")
    if not (run.checkpoint_dir / "state.pt").exists():
        raise RunError(f"{run.path}: no checkpoint to resume from (checkpoint/state.pt)")
    run.remove_stale_temp_files()  # a kill -9 during a write leaves its temp file behind
    with run.user_code():
        cfg = run.config
        device = setup_runtime(cfg)
        if threads is not None:
            torch.set_num_threads(threads)
        reporter = reporter or make_reporter(quiet)
        with decode_progress(reporter.data_progress):
            data = prepare_data(cfg.data, device, normalizes_own_input(cfg.model))
        if data.fingerprint != run.env["data"]["fingerprint"]:
            raise RunError(f"{run.path}: the data changed since the run started (fingerprint)")
        if model is None and run.summary.get("model_from") == "object":
            raise RunError(f"{run.path}: its model was passed as a Python object; resume it "
                           f"in Python with resume_run(path, model=...)")
        from convlab.models import trained_weights_follow

        with trained_weights_follow():  # the checkpoint's weights are loaded next
            model = model_for_data(cfg, model, data.shape, data.num_classes) \
                if model is not None else build_model_for(cfg, run.summary)
    reporter = reporter or make_reporter(quiet)
    trainer = make_trainer(cfg, data, model, device, run, reporter)
    trainer.load_checkpoint()
    trainer.epoch_hook = epoch_hook
    check_trackers(t.name for t in cfg.tracking)
    trainer.tracking = start_tracking(cfg, run, resume_step=trainer.state.step)
    reporter.start(f"resuming {run.path} at epoch {trainer.state.epoch + 1}, "
                   f"step {trainer.state.step}")
    run.write_summary(status="running")
    return _fit_and_close(trainer, run, reporter, t_start, setup_s=time.perf_counter() - t_start)


def _fit_and_close(
    trainer: Trainer, run: Run, reporter: Reporter, t_start: float, setup_s: float
) -> Run:
    """Fit, then write the final weights and the summary (the summary last)."""
    try:
        status = trainer.fit()
    except KeyboardInterrupt:  # second Ctrl-C: the previous checkpoint stays as it was
        reporter.close()
        with contextlib.suppress(OSError):
            run.write_summary(status="interrupted")
        trainer.tracking.finish(run)
        raise
    except BaseException:
        reporter.close()
        # best effort: on a full or read-only disk this write fails too, and the error to
        # report is the first one (it names the file that could not be written)
        with contextlib.suppress(OSError):
            run.write_summary(status="failed")
        trainer.tracking.finish(run)
        raise
    st = trainer.state
    restored = trainer.restore_best() if status == "completed" else False
    if status == "completed" or (status in ("interrupted", "pruned")
                                 and ckpt.all_finite(trainer.weights())):
        ckpt.save_weights(trainer.weights(), run.weights_path)
    # state.pt is the truth: a kill between its rename and metrics.csv's leaves the csv
    # files one checkpoint behind, and a resume after the last epoch saves no checkpoint
    run.write_metrics(st.history)
    run.write_steps([*st.grad_rows, *st.step_rows])
    run.write_summary(
        status=status, **summarize(st, trainer.cfg), restored_best=restored, steps=st.step,
        message=trainer.message, signal=trainer.stop_requested or None,
        setup_s=round(setup_s, 3),
        train_s=round(st.train_seconds, 3), eval_s=round(st.eval_seconds, 3),
        wall_s=round(time.perf_counter() - t_start, 3),
        images_per_s=round(st.train_images / st.train_seconds, 1) if st.train_seconds else None,
        finished=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    )
    trainer.tracking.finish(run)  # guarded: a tracker's failure is a warning line
    reporter.message(_closing_line(run))
    return run


def summarize(st: LoopState, cfg: ExperimentConfig) -> dict[str, Any]:
    """Final (last epoch) and best metrics as ``{"test.top1": ...}`` dicts."""
    by_epoch: dict[int, dict[str, float]] = {}
    for r in st.history:
        row = by_epoch.setdefault(r["epoch"], {})
        for k in ("loss", "top1", "top5"):
            if k in r and r[k] is not None:
                row[f"{r['split']}.{k}"] = r[k]
    if not by_epoch:
        return {"final": {}, "best": {}, "best_epoch": None, "epochs_done": st.epoch}
    last = max(by_epoch)
    if cfg.train.early_stopping is not None and st.best_epoch is not None:
        best_epoch = st.best_epoch
    else:
        key = "val.top1" if "val.top1" in by_epoch[last] else "test.top1"
        best_epoch = max(by_epoch, key=lambda e: by_epoch[e].get(key, float("-inf")))
    return {"final": by_epoch[last], "best": by_epoch[best_epoch], "best_epoch": best_epoch,
            "epochs_done": st.epoch}


def _closing_line(run: Run) -> str:
    from convlab.train.progress import closing_line

    return closing_line(run.summary)
