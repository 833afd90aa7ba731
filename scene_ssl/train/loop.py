"""The one pretraining loop every recipe shares: a plain loop over Accelerate.

Read it top to bottom: :func:`pretrain` builds the pieces (accelerator, method, data,
optimiser, the run's plan) into a :class:`_Run`, resumes, then :func:`_train` runs the
epochs, each optimiser step going through :func:`_step`, logging through :func:`_log` and
checkpoints through :mod:`.checkpoint`. Every Accelerate call is visible: ``prepare``,
``accumulate``, ``backward``, ``save_state`` / ``load_state``, ``log``. The method owns
the algorithm (stop-gradient, momentum encoder, queues, per-step schedules); the loop
calls only what :class:`scene_ssl.models.Method` lists. Probing and exporting the trained
backbone are the recipe's next steps, not the loop's.
"""
from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Callable

import timm
import torch
from accelerate import Accelerator
from accelerate.utils import DataLoaderConfiguration, ProjectConfiguration, gather_object, set_seed
from torch import nn
from tqdm.auto import tqdm

from ..config import save_config
from ..data.views import warn_skipped
from ..durable import tensor_bytes
from ..data.workers import use_cpu_threads, worker_count
from ..models import Method, PretrainConfig, StepContext, method_of
from ..schedule import cosine_lr
from .checkpoint import TrainState, find_checkpoint, save_checkpoint
from .data import TrainData, build_train_data
from .preemption import preemption_signals, stop_requested

__all__ = ["pretrain", "PretrainResult", "NonFiniteLossError", "make_accelerator"]

#: ``monitor(backbone) -> {name: value}``, called every ``monitor_every`` epochs on the main process
Monitor = Callable[[nn.Module], dict[str, float]]


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or infinite; the last checkpoint written before it is intact."""


@dataclasses.dataclass
class PretrainResult:
    """What a run produced: the trained method (unwrapped), its registry name, where it stopped."""

    model: nn.Module
    method: str  # the registry name of what trained (``mocov2`` for MLS's λ = 0)
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
    """How long the run is, and the learning-rate schedule of each optimiser step."""

    steps_per_epoch: int
    total_steps: int
    end_step: int
    lr: float
    warmup_steps: int

    @classmethod
    def of(cls, cfg: PretrainConfig, batches_per_epoch: int, lr: float) -> "_Plan":
        steps_per_epoch = batches_per_epoch // cfg.grad_accum_steps
        if steps_per_epoch == 0:
            raise ValueError("fewer batches than grad_accum_steps: lower batch_size or grad_accum_steps")
        total = cfg.max_steps if cfg.max_steps is not None else cfg.epochs * steps_per_epoch
        return cls(steps_per_epoch, total, min(total, cfg.stop_after) if cfg.stop_after else total, lr,
                   int(cfg.warmup_epochs * steps_per_epoch))


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


@dataclasses.dataclass
class _Run:
    """The pieces of one run that the loop's steps share.

    ``wrapped`` is the method as Accelerate prepared it (DDP on several processes): what
    ``accumulate`` and ``backward`` see, called through ``forward`` (the same, compiled with
    ``--compile``). ``method`` is the same network unwrapped: the contract's hooks
    (``begin_step``, ``encoder``) are called on it.
    """

    cfg: PretrainConfig
    accelerator: Accelerator
    wrapped: nn.Module
    forward: Callable[[dict], dict]
    method: Method
    name: str
    optimizer: torch.optim.Optimizer
    data: TrainData
    plan: _Plan
    state: TrainState
    progress: _Progress

    def at(self) -> StepContext:
        return StepContext(self.state.step, self.plan.total_steps, self.plan.steps_per_epoch, self.cfg.grad_accum_steps)


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


def pretrain(cfg: PretrainConfig, *, accelerator: Accelerator | None = None,
             monitor: Monitor | None = None) -> PretrainResult:
    """Train the method ``cfg.build_method()`` on views from ``cfg.build_views()``.

    Everything a config can get wrong fails before training: the method's hyperparameters
    first, then the data spec; ``config.yaml`` is written only after that. SIGTERM / SIGUSR1
    end the run early with a checkpoint (``--resume auto`` goes on). ``monitor`` (e.g.
    :class:`scene_ssl.probe.KNNMonitor`) is called every ``cfg.monitor_every`` epochs.
    """
    cfg.check()
    accelerator = _checked(accelerator or make_accelerator(cfg), cfg)
    # every worker keeps a core busy: even decode-only ones, at the quick job's step rate
    # (measured: its 1 worker + 2 threads on 2 cores trains at 1054 images/s, + 1 thread at 1150)
    threads = use_cpu_threads(cfg.threads, worker_count(cfg.num_workers), accelerator.device)
    set_seed(cfg.seed)
    _fast_backends(accelerator)
    method = cfg.build_method()  # checks the method's hyperparameters (topk <= queue size, ...)
    spec = method_of(method)
    data = build_train_data(cfg, _checked_views(cfg, method), method.encoder, accelerator)
    model = _convert_model(cfg, method)
    lr = cfg.lr(accelerator.num_processes)
    optimizer = torch.optim.SGD(  # fused on CUDA: one kernel for the whole update instead of one per parameter
        [p for p in model.parameters() if p.requires_grad], lr=lr, momentum=cfg.sgd_momentum,
        weight_decay=cfg.weight_decay, fused=True if accelerator.device.type == "cuda" else None)
    if data.stream is None:
        model, optimizer, data.loader = accelerator.prepare(model, optimizer, data.loader)
    else:  # a stream shards itself across processes: Accelerate must not shard it again
        model, optimizer = accelerator.prepare(model, optimizer)
        accelerator.register_for_checkpointing(data.stream)
    run = _Run(cfg, accelerator, model, torch.compile(model) if cfg.compile else model, accelerator.unwrap_model(model),
               spec.name if spec else type(method).__name__.lower(), optimizer, data,
               _Plan.of(cfg, len(data.loader), lr), TrainState(),
               _Progress(nonfinite=torch.zeros((), dtype=torch.bool, device=accelerator.device)))
    accelerator.register_for_checkpointing(run.state)
    _resume(cfg, accelerator, Path(cfg.output_dir) / "checkpoints", run.state)
    if accelerator.is_main_process:  # only now: the config, the method and the data were all checked
        save_config(cfg, Path(cfg.output_dir) / "config.yaml")
        accelerator.init_trackers("pretrain", config={k: v for k, v in dataclasses.asdict(cfg).items()
                                                      if isinstance(v, (int, float, str, bool))})
    _print_header(run, spec.display_name if spec else type(method).__name__, threads)
    with preemption_signals() as received:
        stopped_by = _train(run, received, monitor)
    return _finish(run, stopped_by)


# -- setting up -----------------------------------------------------------------------------

def _checked(accelerator: Accelerator, cfg: PretrainConfig) -> Accelerator:
    if accelerator.gradient_accumulation_steps != cfg.grad_accum_steps:
        raise ValueError(f"the accelerator accumulates {accelerator.gradient_accumulation_steps} batches but "
                         f"grad_accum_steps is {cfg.grad_accum_steps}: build it with gradient_accumulation_steps="
                         f"{cfg.grad_accum_steps}")
    if cfg.sync_bn and accelerator.num_processes > 1 and accelerator.device.type == "cpu":
        raise ValueError("sync_bn needs GPUs (torch's SyncBatchNorm does not run on CPU processes)")
    return accelerator


def _checked_views(cfg: PretrainConfig, method: Method):
    transform = cfg.build_views()
    if transform.num_views != method.num_views:
        raise ValueError(f"{type(cfg).__name__}.build_views makes {transform.num_views} views per image but "
                         f"{type(method).__name__} expects {method.num_views}")
    return transform


def _fast_backends(accelerator: Accelerator) -> None:
    if accelerator.device.type == "cuda":  # fixed shapes: let cuDNN pick its fastest kernels
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True


def _convert_model(cfg: PretrainConfig, model: nn.Module) -> nn.Module:
    if cfg.sync_bn:  # the BAM authors' setting; timm's converter keeps its fused BN + activation layers
        model = timm.layers.convert_sync_batchnorm(model)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model


def _resume(cfg: PretrainConfig, accelerator: Accelerator, ckpt_dir: Path, state: TrainState) -> None:
    warn = lambda message: accelerator.print(message)  # noqa: E731 (once, from the main process)
    path = find_checkpoint(cfg.resume, ckpt_dir, warn) if cfg.resume else None
    if path is not None:
        accelerator.load_state(str(path))
        accelerator.print(f"resumed from {path} at step {state.step}")
    elif cfg.resume == "auto":
        accelerator.print(f"--resume auto: no checkpoint in {ckpt_dir} yet, starting fresh")


def _print_header(run: _Run, display_name: str, threads: int) -> None:
    cfg, accelerator, plan = run.cfg, run.accelerator, run.plan
    trackers = " and tensorboard (logs/)" if _trackers() else " (pip install tensorboard for curves)"
    accelerator.print(
        f"{display_name} on {cfg.backbone}: {len(run.data.dataset)} images of {cfg.data}, "
        f"{plan.steps_per_epoch} steps/epoch, {plan.total_steps} steps, lr {plan.lr:.4g} "
        f"({cfg.lr_rule(accelerator.num_processes)}), {accelerator.num_processes} process(es), {accelerator.device}"
        f"{f' ({threads} CPU thread(s))' if accelerator.device.type == 'cpu' else ''}, "
        f"mixed precision {accelerator.mixed_precision}\n"
        f"logging to {Path(cfg.output_dir) / 'train_log.jsonl'}{trackers}")
    if cfg.probe_data and cfg.probe_data != cfg.data:
        accelerator.print(f"note: the probes run on {cfg.probe_data}, not on the training data {cfg.data} "
                          "(set --probe-data, or --probe-data none to skip them)")


# -- training -------------------------------------------------------------------------------

def _train(run: _Run, received: list[str], monitor: Monitor | None) -> str | None:
    """Run epochs until ``plan.end_step``; return the signal that stopped the run, if any."""
    state, plan = run.state, run.plan
    # the bar is closed however the run ends, so that an error is printed on a line of its own
    with tqdm(total=plan.end_step, initial=state.step, disable=not run.accelerator.is_local_main_process,
              desc="pretrain") as bar:
        if state.step == 0:  # the reference: the backbone before any step
            _monitor(run, monitor, 0)
        run.wrapped.train()
        run.method.begin_step(run.at())
        while state.step < plan.end_step:
            stopped_by = _epoch(run, received, bar)
            if stopped_by:
                return stopped_by
            if state.step % plan.steps_per_epoch == 0:  # a whole epoch is done
                _monitor(run, monitor, state.step // plan.steps_per_epoch)
    return None


def _epoch(run: _Run, received: list[str], bar) -> str | None:
    """The (rest of the) current epoch, up to ``plan.end_step``; the signal that stopped it, if any."""
    cfg, state, plan, data = run.cfg, run.state, run.plan, run.data
    epoch = state.step // plan.steps_per_epoch
    done_in_epoch = (state.step % plan.steps_per_epoch) * cfg.grad_accum_steps
    for batch in data.batches(run.accelerator, epoch, done_in_epoch):
        if data.stream is not None:
            data.stream.update(batch)
        log_now = (state.step + 1) % cfg.log_every == 0 or state.step + 1 == plan.end_step
        out = _step(run, batch, log_now)
        if not run.accelerator.sync_gradients:
            continue
        state.step += 1
        for group in run.optimizer.param_groups:
            group["lr"] = cosine_lr(state.step, plan.total_steps, plan.lr, plan.warmup_steps)
        run.method.begin_step(run.at())
        bar.update(1)
        if log_now:
            _log(run, out, bar)
        if cfg.save_every and state.step % cfg.save_every == 0 and state.step < plan.end_step:
            _check_finite(run)
            run.progress.last_checkpoint = _save(run)
        if stop_requested(received, run.accelerator, state.step, cfg.log_every):
            return received[0] if received else "a signal on another process"
        if state.step >= plan.end_step:
            break
    return None


def _step(run: _Run, batch: dict, diagnostics: bool) -> dict[str, torch.Tensor]:
    """One forward / backward (and, at the end of an accumulation, one optimiser step)."""
    with run.accelerator.accumulate(run.wrapped):
        batch = run.data.decode(batch)  # with --decode-on gpu the JPEGs are decoded here, on the device
        warn_skipped(batch.get("skipped"), run.progress.skipped)
        views = run.data.to_views(batch)  # V x (B, 3, S, S) normalised, channels-last
        inputs = {"views": views, "index": batch["index"], "diagnostics": diagnostics}
        if run.data.labels is not None:
            inputs["label_table"] = run.data.labels
        out = run.forward(inputs)
        loss = out["loss"]
        run.progress.nonfinite |= ~torch.isfinite(loss.detach())  # no sync: read at log and checkpoint steps
        run.accelerator.backward(loss)
        if run.cfg.clip_grad_norm and run.accelerator.sync_gradients:
            run.accelerator.clip_grad_norm_(run.wrapped.parameters(), run.cfg.clip_grad_norm)
        run.optimizer.step()
        run.optimizer.zero_grad(set_to_none=True)
    run.progress.window_images += views[0].shape[0]
    return out


def _save(run: _Run) -> Path:
    """A checkpoint; a stream's place first gathers every process's workers (rank 0 writes it)."""
    stream, accelerator = run.data.stream, run.accelerator
    if stream is not None and accelerator.num_processes > 1:
        for positions in gather_object([stream.positions]):
            stream.positions.update(positions)
    return save_checkpoint(accelerator, Path(run.cfg.output_dir) / "checkpoints", run.state.step,
                           run.cfg.keep_checkpoints, extra={"method": run.name}, size_hint=lambda: _state_bytes(run))


def _state_bytes(run: _Run) -> int:
    """About what a checkpoint takes: the model's tensors and the optimizer's."""
    return tensor_bytes([*run.wrapped.state_dict().values(),
                         *(v for state in run.optimizer.state.values() for v in state.values() if torch.is_tensor(v))])


def _all_skipped(run: _Run) -> set[str]:
    if run.accelerator.num_processes == 1:
        return run.progress.skipped
    return set(gather_object(sorted(run.progress.skipped)))  # every process's names: a file two processes met counts once


def _check_finite(run: _Run) -> None:
    if run.progress.nonfinite.item():  # CPU-GPU sync point: only at log and checkpoint steps
        raise NonFiniteLossError(
            f"non-finite loss at or before step {run.state.step}; stopping. The last good checkpoint is "
            f"{run.progress.last_checkpoint or 'none (no checkpoint was written yet)'}; lower the learning rate or try bf16 instead of fp16")


def _log(run: _Run, out: dict, bar) -> None:
    _check_finite(run)
    progress = run.progress
    logs = {k: float(v.detach()) for k, v in out.items()}  # sync point, every log_every steps
    logs["lr"] = run.optimizer.param_groups[0]["lr"]
    logs["skipped_images"] = len(_all_skipped(run))
    now = time.perf_counter()
    logs["images_per_s"] = progress.window_images * run.accelerator.num_processes / (now - progress.window_start)
    progress.window_start, progress.window_images = now, 0
    _write_logs(run, logs)
    bar.set_postfix({k: f"{v:.3g}" for k, v in logs.items() if k.startswith("loss")})
    progress.last_logs = logs


def _write_logs(run: _Run, logs: dict[str, float]) -> None:
    run.accelerator.log(logs, step=run.state.step)
    if run.accelerator.is_main_process:  # a plain-text log for tools without tensorboard
        with open(Path(run.cfg.output_dir) / "train_log.jsonl", "a") as f:
            f.write(json.dumps({"step": run.state.step, **logs}) + "\n")


def _monitor(run: _Run, monitor: Monitor | None, epoch: int) -> None:
    if monitor is None or not run.cfg.monitor_every or epoch % run.cfg.monitor_every:
        return
    if run.accelerator.is_main_process:  # eval-mode features of the online backbone; the others wait
        result = {"epoch": epoch, **monitor(run.method.encoder)}
        run.progress.monitor.append(result)
        _write_logs(run, {k: v for k, v in result.items() if k != "epoch"})
        tqdm.write(f"epoch {epoch}: " + ", ".join(f"{k} {v:.2f}" for k, v in result.items() if k != "epoch"))
    run.accelerator.wait_for_everyone()


def _finish(run: _Run, stopped_by: str | None) -> PretrainResult:
    accelerator, state, plan = run.accelerator, run.state, run.plan
    _check_finite(run)
    if accelerator.num_processes > 1:
        # DDP broadcasts buffers at the start of each forward, so the last step's BN running
        # statistics are each process's own: end with rank 0's everywhere, as in the checkpoint
        for buffer in run.method.buffers():
            torch.distributed.broadcast(buffer.data, src=0)
    checkpoint = _save(run)
    skipped = len(_all_skipped(run))
    if skipped:
        accelerator.print(f"skipped {skipped} unreadable image(s) (see the warnings above)")
    if stopped_by:
        accelerator.print(f"{stopped_by} received: stopped at step {state.step} of {plan.total_steps} with a checkpoint "
                          f"({checkpoint}); the same command with --resume auto goes on from there")
    elif state.step < plan.total_steps:
        accelerator.print(f"stopped at step {state.step} of {plan.total_steps} (stop_after); go on with --resume auto")
    accelerator.end_training()
    return PretrainResult(run.method, run.name, state.step, plan.total_steps, run.progress.last_logs, checkpoint,
                          Path(run.cfg.output_dir), stopped_by, skipped, run.progress.monitor)
