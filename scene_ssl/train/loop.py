"""The one pretraining loop every recipe shares: a plain loop over Accelerate.

Read it top to bottom: :func:`pretrain` builds the pieces (accelerator, method, data,
optimiser, the run's plan), resumes, then :func:`_train` runs the epochs, each optimiser
step going through :func:`_step`, logging through :func:`_log` and checkpoints through
:mod:`.checkpoint`. Every Accelerate call is visible: ``prepare``, ``accumulate``,
``backward``, ``save_state`` / ``load_state``, ``log``. The method module owns the
algorithm (stop-gradient, momentum encoder, queues); probing and exporting the trained
backbone are the recipe's next steps, not the loop's.
"""
from __future__ import annotations

import dataclasses
import json
import math
import time
import warnings
from pathlib import Path
from typing import Any, Callable

import timm
import torch
from accelerate import Accelerator
from accelerate.utils import DataLoaderConfiguration, ProjectConfiguration, gather_object, set_seed
from torch import nn
from tqdm.auto import tqdm

from ..cli import save_config
from ..schedule import cosine_lr, cosine_momentum
from ..transforms.multiview import MultiViewTransform
from .checkpoint import TrainState, find_checkpoint, save_checkpoint
from .config import PretrainConfig
from .data import TrainData, build_train_data
from .preemption import preemption_signals, stop_requested

__all__ = ["pretrain", "PretrainResult", "NonFiniteLossError", "make_accelerator"]

#: ``monitor(backbone) -> {name: value}``, called every ``monitor_every`` epochs on the main process
Monitor = Callable[[nn.Module], dict[str, float]]


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or infinite; the last checkpoint written before it is intact."""


@dataclasses.dataclass
class PretrainResult:
    """What a run produced: the trained method (unwrapped) and where it stopped."""

    model: nn.Module
    step: int
    total_steps: int
    losses: dict[str, float]  # the last logged values
    checkpoint: Path
    output_dir: Path
    stopped_by: str | None = None  # the signal that ended the run early
    skipped_images: int = 0  # unreadable files, each counted once
    monitor: list[dict[str, float]] = dataclasses.field(default_factory=list)

    @property
    def finished(self) -> bool:
        return self.step >= self.total_steps


@dataclasses.dataclass
class _Plan:
    """How long the run is, and the schedules of each optimiser step."""

    steps_per_epoch: int
    total_steps: int
    end_step: int
    lr: float
    warmup_steps: int
    mls_warmup_steps: int

    @classmethod
    def of(cls, cfg: PretrainConfig, batches_per_epoch: int, lr: float) -> "_Plan":
        steps_per_epoch = batches_per_epoch // cfg.grad_accum_steps
        if steps_per_epoch == 0:
            raise ValueError("fewer batches than grad_accum_steps: lower batch_size or grad_accum_steps")
        total = cfg.max_steps if cfg.max_steps is not None else cfg.epochs * steps_per_epoch
        return cls(steps_per_epoch, total, min(total, cfg.stop_after) if cfg.stop_after else total, lr,
                   int(cfg.warmup_epochs * steps_per_epoch), int(getattr(cfg, "mls_warmup_epochs", 0.0) * steps_per_epoch))


@dataclasses.dataclass
class _Progress:
    """What the loop carries between steps."""

    nonfinite: torch.Tensor
    skipped: set[str] = dataclasses.field(default_factory=set)
    last_logs: dict[str, float] = dataclasses.field(default_factory=dict)
    last_checkpoint: Path | None = None
    window_start: float = dataclasses.field(default_factory=time.perf_counter)
    window_images: int = 0
    monitor: list[dict[str, float]] = dataclasses.field(default_factory=list)


def _trackers() -> list[str]:
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        return []
    return ["tensorboard"]


def make_accelerator(cfg: PretrainConfig) -> Accelerator:
    """The Accelerator a recipe trains with: mixed precision, accumulation, trackers, output dir."""
    out = Path(cfg.output_dir)
    return Accelerator(
        mixed_precision=cfg.mixed_precision,
        gradient_accumulation_steps=cfg.grad_accum_steps,
        log_with=_trackers() or None,  # tensorboard when installed; train_log.jsonl always
        project_config=ProjectConfiguration(project_dir=str(out), logging_dir=str(out / "logs")),
        dataloader_config=DataLoaderConfiguration(non_blocking=True),  # pinned batches, copied without blocking
    )


def pretrain(cfg: PretrainConfig, build_model: Callable[[PretrainConfig], nn.Module],
             build_transform: Callable[[PretrainConfig], MultiViewTransform], *,
             accelerator: Accelerator | None = None, monitor: Monitor | None = None) -> PretrainResult:
    """Train ``build_model(cfg)`` on views from ``build_transform(cfg)``.

    Everything a config can get wrong fails before training: the method's hyperparameters
    first, then the data spec; ``config.yaml`` is written only after that. SIGTERM / SIGUSR1
    end the run early with a checkpoint (``--resume auto`` goes on). ``monitor`` (e.g.
    :class:`scene_ssl.probe.KNNMonitor`) is called every ``cfg.monitor_every`` epochs.
    """
    cfg.check()
    accelerator = _checked(accelerator or make_accelerator(cfg), cfg)
    set_seed(cfg.seed)
    _fast_backends(accelerator)
    model = build_model(cfg)  # checks the method's hyperparameters (topk <= queue size, ...)
    data = build_train_data(cfg, build_transform(cfg), model, accelerator)
    model = _convert_model(cfg, model, accelerator)
    lr = cfg.lr(accelerator.num_processes)
    optimizer = torch.optim.SGD(  # fused on CUDA: one kernel for the whole update instead of one per parameter
        [p for p in model.parameters() if p.requires_grad], lr=lr, momentum=cfg.sgd_momentum,
        weight_decay=cfg.weight_decay, fused=True if accelerator.device.type == "cuda" else None)
    if data.stream is None:
        model, optimizer, data.loader = accelerator.prepare(model, optimizer, data.loader)
    else:  # a stream shards itself across processes: Accelerate must not shard it again
        model, optimizer = accelerator.prepare(model, optimizer)
        accelerator.register_for_checkpointing(data.stream)
    method = accelerator.unwrap_model(model)
    if hasattr(method, "set_label_table"):  # pseudo-label diagnostics, when the data has labels
        method.set_label_table(data.labels)
    plan = _Plan.of(cfg, len(data.loader), lr)

    out_dir = Path(cfg.output_dir)
    state = TrainState()
    accelerator.register_for_checkpointing(state)
    _resume(cfg, accelerator, out_dir / "checkpoints", state)
    if accelerator.is_main_process:  # only now: the config, the method and the data were all checked
        save_config(cfg, out_dir / "config.yaml")
        accelerator.init_trackers("pretrain", config={k: v for k, v in dataclasses.asdict(cfg).items()
                                                      if isinstance(v, (int, float, str, bool))})
    _print_header(accelerator, cfg, method, data, plan)
    progress = _Progress(nonfinite=torch.zeros((), dtype=torch.bool, device=accelerator.device))
    with preemption_signals() as received:
        stopped_by = _train(cfg, accelerator, model, method, optimizer, data, plan, state, progress, received, monitor)
    return _finish(cfg, accelerator, method, data, plan, state, progress, stopped_by)


# -- setting up -----------------------------------------------------------------------------

def _checked(accelerator: Accelerator, cfg: PretrainConfig) -> Accelerator:
    if accelerator.gradient_accumulation_steps != cfg.grad_accum_steps:
        raise ValueError(f"the accelerator accumulates {accelerator.gradient_accumulation_steps} batches but "
                         f"grad_accum_steps is {cfg.grad_accum_steps}: build it with gradient_accumulation_steps="
                         f"{cfg.grad_accum_steps}")
    if cfg.sync_bn and accelerator.num_processes > 1 and accelerator.device.type == "cpu":
        raise ValueError("sync_bn needs GPUs (torch's SyncBatchNorm does not run on CPU processes)")
    return accelerator


def _fast_backends(accelerator: Accelerator) -> None:
    if accelerator.device.type == "cuda":  # fixed shapes: let cuDNN pick its fastest kernels
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True


def _convert_model(cfg: PretrainConfig, model: nn.Module, accelerator: Accelerator) -> nn.Module:
    if cfg.sync_bn:  # the BAM authors' setting; timm's converter keeps its fused BN + activation layers
        model = timm.layers.convert_sync_batchnorm(model)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model


def _resume(cfg: PretrainConfig, accelerator: Accelerator, ckpt_dir: Path, state: TrainState) -> None:
    path = find_checkpoint(cfg.resume, ckpt_dir) if cfg.resume else None
    if path is not None:
        accelerator.load_state(str(path))
        accelerator.print(f"resumed from {path} at step {state.step}")
    elif cfg.resume == "auto":
        accelerator.print(f"--resume auto: no checkpoint in {ckpt_dir} yet, starting fresh")


def _print_header(accelerator: Accelerator, cfg: PretrainConfig, method: nn.Module, data: TrainData, plan: _Plan) -> None:
    total_batch = cfg.batch_size * accelerator.num_processes * cfg.grad_accum_steps
    trackers = " and tensorboard (logs/)" if _trackers() else " (pip install tensorboard for curves)"
    accelerator.print(
        f"{type(method).__name__} on {cfg.backbone}: {len(data.dataset)} images of {cfg.data}, "
        f"{plan.steps_per_epoch} steps/epoch, {plan.total_steps} steps, lr {plan.lr:.4g} "
        f"(base {cfg.base_lr} x {total_batch}/256), {accelerator.num_processes} process(es), {accelerator.device}, "
        f"mixed precision {accelerator.mixed_precision}\n"
        f"logging to {Path(cfg.output_dir) / 'train_log.jsonl'}{trackers}")
    if cfg.probe_data and cfg.probe_data != cfg.data:
        accelerator.print(f"note: the probes run on {cfg.probe_data}, not on the training data {cfg.data} "
                          "(set --probe-data, or --probe-data none to skip them)")


# -- training -------------------------------------------------------------------------------

def _set_schedules(method: nn.Module, cfg: PretrainConfig, plan: _Plan, step: int, base_ema: float | None) -> None:
    """What the method must know of the optimiser step after ``step``.

    The EMA momentum: the method updates its momentum encoder at every forward, so with
    accumulation each micro-batch uses m^(1/n): the online weights do not change within a
    step, and n updates with m^(1/n) are one update with m. MLS's warm-up: InfoNCE alone for
    the first ``mls_warmup_epochs``.
    """
    if hasattr(method, "mls_active"):
        method.mls_active = step >= plan.mls_warmup_steps
    if base_ema is not None:
        m = cosine_momentum(step, plan.total_steps, base_ema) if getattr(cfg, "ema_schedule", "constant") == "cosine" else base_ema
        method.momentum = m ** (1.0 / cfg.grad_accum_steps)


def _train(cfg, accelerator, model, method, optimizer, data, plan, state, progress, received, monitor) -> str | None:
    """Run epochs until ``plan.end_step``; return the signal that stopped the run, if any."""
    forward = torch.compile(model) if cfg.compile else model
    params = [p for p in model.parameters() if p.requires_grad]
    base_ema = getattr(method, "momentum", None)
    bar = tqdm(total=plan.end_step, initial=state.step, disable=not accelerator.is_local_main_process, desc="pretrain")
    if state.step == 0:  # the reference: the backbone before any step
        _monitor(cfg, accelerator, method, monitor, 0, state, progress)
    model.train()
    _set_schedules(method, cfg, plan, state.step, base_ema)
    while state.step < plan.end_step:
        epoch = state.step // plan.steps_per_epoch
        done_in_epoch = (state.step % plan.steps_per_epoch) * cfg.grad_accum_steps
        for batch in data.batches(accelerator, epoch, done_in_epoch):
            if data.stream is not None:
                data.stream.update(batch)
            log_now = (state.step + 1) % cfg.log_every == 0 or state.step + 1 == plan.end_step
            out = _step(cfg, accelerator, model, forward, optimizer, params, data, batch, progress, log_now)
            if not accelerator.sync_gradients:
                continue
            state.step += 1
            for group in optimizer.param_groups:
                group["lr"] = cosine_lr(state.step, plan.total_steps, plan.lr, plan.warmup_steps)
            _set_schedules(method, cfg, plan, state.step, base_ema)
            bar.update(1)
            if log_now:
                _log(cfg, accelerator, out, optimizer, progress, state, bar)
            if cfg.save_every and state.step % cfg.save_every == 0 and state.step < plan.end_step:
                _check_finite(progress, state)
                progress.last_checkpoint = _save(cfg, accelerator, data, state)
            if stop_requested(received, accelerator, state.step, cfg.log_every):
                bar.close()
                return received[0] if received else "a signal on another process"
            if state.step >= plan.end_step:
                break
        if state.step % plan.steps_per_epoch == 0:  # a whole epoch is done
            _monitor(cfg, accelerator, method, monitor, state.step // plan.steps_per_epoch, state, progress)
    bar.close()
    return None


def _step(cfg, accelerator, model, forward, optimizer, params, data: TrainData, batch, progress: _Progress,
          diagnostics: bool) -> dict[str, torch.Tensor]:
    """One forward / backward (and, at the end of an accumulation, one optimiser step)."""
    with accelerator.accumulate(model):
        batch = data.decode(batch)  # with --decode-on gpu the JPEGs are decoded here, on the device
        _count_skipped(batch, progress.skipped)
        views = data.to_views(batch)  # V x (B, 3, S, S) normalised, channels-last
        out = forward({"views": views, "index": batch["index"], "diagnostics": diagnostics})
        loss = out["loss"]
        progress.nonfinite |= ~torch.isfinite(loss.detach())  # no sync: read at log and checkpoint steps
        accelerator.backward(loss)
        if cfg.clip_grad_norm and accelerator.sync_gradients:
            accelerator.clip_grad_norm_(params, cfg.clip_grad_norm)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    progress.window_images += views[0].shape[0]
    return out


def _save(cfg, accelerator: Accelerator, data: TrainData, state: TrainState) -> Path:
    """A checkpoint; a stream's place first gathers every process's workers (rank 0 writes it)."""
    if data.stream is not None and accelerator.num_processes > 1:
        for positions in gather_object([data.stream.positions]):
            data.stream.positions.update(positions)
    return save_checkpoint(accelerator, Path(cfg.output_dir) / "checkpoints", state.step, cfg.keep_checkpoints)


def _count_skipped(batch: dict, seen: set[str]) -> None:
    """Warn once per unreadable file; remember it, so that each is counted once."""
    for name in batch.get("skipped") or []:
        if name not in seen:
            seen.add(name)
            warnings.warn(f"skipping unreadable image: {name}", stacklevel=3)


def _all_skipped(accelerator: Accelerator, skipped: set[str]) -> set[str]:
    if accelerator.num_processes == 1:
        return skipped
    return set(gather_object(sorted(skipped)))  # every process's names: a file two processes met counts once


def _check_finite(progress: _Progress, state: TrainState) -> None:
    if progress.nonfinite.item():  # CPU-GPU sync point: only at log and checkpoint steps
        raise NonFiniteLossError(
            f"non-finite loss at or before step {state.step}; stopping. The last good checkpoint is "
            f"{progress.last_checkpoint or 'none (no checkpoint was written yet)'}; lower the learning rate or try bf16 instead of fp16")


def _log(cfg, accelerator: Accelerator, out: dict, optimizer, progress: _Progress, state: TrainState, bar) -> None:
    _check_finite(progress, state)
    logs = {k: float(v.detach()) for k, v in out.items()}  # sync point, every log_every steps
    logs["lr"] = optimizer.param_groups[0]["lr"]
    logs["skipped_images"] = len(_all_skipped(accelerator, progress.skipped))
    now = time.perf_counter()
    logs["images_per_s"] = progress.window_images * accelerator.num_processes / (now - progress.window_start)
    progress.window_start, progress.window_images = now, 0
    _write_logs(cfg, accelerator, logs, state.step)
    bar.set_postfix({k: f"{v:.3g}" for k, v in logs.items() if k.startswith("loss")})
    progress.last_logs = logs


def _write_logs(cfg, accelerator: Accelerator, logs: dict[str, float], step: int) -> None:
    accelerator.log(logs, step=step)
    if accelerator.is_main_process:  # a plain-text log for tools without tensorboard
        with open(Path(cfg.output_dir) / "train_log.jsonl", "a") as f:
            f.write(json.dumps({"step": step, **logs}) + "\n")


def _monitor(cfg, accelerator: Accelerator, method: nn.Module, monitor: Monitor | None, epoch: int,
             state: TrainState, progress: _Progress) -> None:
    if monitor is None or not cfg.monitor_every or epoch % cfg.monitor_every:
        return
    if accelerator.is_main_process:  # eval-mode features of the online backbone; the others wait
        result = {"epoch": epoch, **monitor(method.encoder)}
        progress.monitor.append(result)
        _write_logs(cfg, accelerator, {k: v for k, v in result.items() if k != "epoch"}, state.step)
        tqdm.write(f"epoch {epoch}: " + ", ".join(f"{k} {v:.2f}" for k, v in result.items() if k != "epoch"))
    accelerator.wait_for_everyone()


def _finish(cfg, accelerator: Accelerator, method: nn.Module, data: TrainData, plan: _Plan, state: TrainState,
            progress: _Progress, stopped_by: str | None) -> PretrainResult:
    _check_finite(progress, state)
    if accelerator.num_processes > 1:
        # DDP broadcasts buffers at the start of each forward, so the last step's BN running
        # statistics are each process's own: end with rank 0's everywhere, as in the checkpoint
        for buffer in method.buffers():
            torch.distributed.broadcast(buffer.data, src=0)
    checkpoint = _save(cfg, accelerator, data, state)
    skipped = len(_all_skipped(accelerator, progress.skipped))
    if skipped:
        accelerator.print(f"skipped {skipped} unreadable image(s) (see the warnings above)")
    if stopped_by:
        accelerator.print(f"{stopped_by} received: stopped at step {state.step} of {plan.total_steps} with a checkpoint "
                          f"({checkpoint}); the same command with --resume auto goes on from there")
    elif state.step < plan.total_steps:
        accelerator.print(f"stopped at step {state.step} of {plan.total_steps} (stop_after); go on with --resume auto")
    accelerator.end_training()
    return PretrainResult(method, state.step, plan.total_steps, progress.last_logs, checkpoint, Path(cfg.output_dir),
                          stopped_by, skipped, progress.monitor)
