"""The one pretraining loop every recipe shares: a plain loop over Accelerate.

Read it top to bottom: :func:`pretrain` builds the pieces (accelerator, method, data,
optimiser, the run's plan) into a :class:`_Run`, resumes, then :func:`_train` runs the
epochs, each optimiser step being :func:`_begin_step`, its forwards (:func:`_forward_backward`,
several with ``grad_accum_steps``) and :func:`_optimizer_step`; logging goes through
:func:`_log` and checkpoints through :mod:`.checkpoint`. Every Accelerate call is visible:
``prepare``, ``no_sync``, ``backward``, ``save_state`` / ``load_state``, ``log``. The method owns
the algorithm (stop-gradient, momentum encoder, queues, per-step schedules); the loop
calls only what :class:`scene_ssl.models.Method` lists. Probing and exporting the trained
backbone are the recipe's next steps, not the loop's.
"""
from __future__ import annotations

import contextlib
import dataclasses
import math
import time
from pathlib import Path
from typing import Callable

import timm
import torch
from accelerate import Accelerator
from accelerate.utils import DataLoaderConfiguration, DistributedDataParallelKwargs, gather_object, set_seed
from torch import nn
from tqdm.auto import tqdm

from ..config import save_config
from ..data.views import warn_skipped
from ..durable import tensor_bytes
from ..data.workers import use_cpu_threads, worker_count
from ..models import Method, PretrainConfig, StepContext, TimmBackbone, method_of
from ..schedule import cosine_lr
from ..nonfinite import NonFiniteLossError, NonFiniteWatch
from ..processes import check_launch, is_local_main_process, is_main_process
from .checkpoint import TrainState, find_checkpoint, save_checkpoint
from .data import TrainData, build_train_data
from ..trackers import tracker_kwargs, trackers_line
from .train_log import TrainLog
from .preemption import StopAgreement, preemption_signals

__all__ = ["pretrain", "PretrainResult", "NonFiniteLossError", "make_accelerator"]

#: ``monitor(backbone, accelerator) -> {name: value}``, called every ``monitor_every`` epochs on
#: every process (each may do a share of the work; all return the same values)
Monitor = Callable[[nn.Module, Accelerator], dict[str, float]]


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
    # still joined to the other processes, for what follows (probes, export): the caller ends
    # it with ``accelerator.end_training()`` (as run_pretraining does)
    accelerator: Accelerator | None = None

    @property
    def finished(self) -> bool:
        return self.step >= self.total_steps


@dataclasses.dataclass
class _Plan:
    """How long the run is, in optimiser steps, and where each step falls in its epoch.

    The one owner of "where are we": everything is a function of ``TrainState.step``. An
    epoch is one pass over this process's ``batches`` loader batches, in ``ceil(batches /
    accum)`` optimiser steps of ``accum`` forwards each, the last step taking what is left
    (so every batch trains once per epoch, and a step always averages its own forwards).
    """

    batches: int  # loader batches per epoch on this process
    accum: int  # forwards per optimiser step (the epoch's last step may take fewer)
    total_steps: int
    end_step: int
    lr: float
    warmup_steps: int

    @classmethod
    def of(cls, cfg: PretrainConfig, batches_per_epoch: int, lr: float) -> "_Plan":
        if batches_per_epoch < 1:
            raise ValueError("no whole batch per epoch: lower batch_size")
        steps_per_epoch = math.ceil(batches_per_epoch / cfg.grad_accum_steps)
        total = cfg.max_steps if cfg.max_steps is not None else cfg.epochs * steps_per_epoch
        return cls(batches_per_epoch, cfg.grad_accum_steps, total, min(total, cfg.stop_after) if cfg.stop_after else total,
                   lr, int(cfg.warmup_epochs * steps_per_epoch))

    @property
    def steps_per_epoch(self) -> int:
        return math.ceil(self.batches / self.accum)

    def epoch_of(self, step: int) -> int:
        return step // self.steps_per_epoch

    def batches_done(self, step: int) -> int:
        """Loader batches of its epoch that come before optimiser step ``step`` (0-based)."""
        return (step % self.steps_per_epoch) * self.accum

    def forwards(self, step: int) -> int:
        """Forwards of optimiser step ``step``: ``accum``, or what is left of the epoch."""
        return min(self.accum, self.batches - self.batches_done(step))


@dataclasses.dataclass
class _Progress:
    """What the loop carries between steps."""

    nonfinite: NonFiniteWatch
    skipped: set[str] = dataclasses.field(default_factory=set)
    last_logs: dict[str, float] = dataclasses.field(default_factory=dict)
    last_checkpoint: Path | None = None
    window_start: float = dataclasses.field(default_factory=time.perf_counter)
    window_images: int = 0
    monitor: list[dict[str, float]] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class _Run:
    """The pieces of one run that the loop's steps share.

    ``wrapped`` is the method as Accelerate prepared it (DDP on several processes): what is
    called, and what ``no_sync`` and ``backward`` see. ``method`` is the same network
    unwrapped: the contract's hooks (``begin_step``, ``encoder``) are called on it.
    """

    cfg: PretrainConfig
    accelerator: Accelerator
    wrapped: nn.Module
    method: Method
    name: str
    optimizer: torch.optim.Optimizer
    data: TrainData
    plan: _Plan
    state: TrainState
    progress: _Progress
    log: TrainLog  # train_log.jsonl and the trackers

    def at(self) -> StepContext:
        step = self.state.step
        return StepContext(step, self.plan.total_steps, self.plan.steps_per_epoch, self.plan.forwards(step))


def make_accelerator(cfg: PretrainConfig) -> Accelerator:
    """The Accelerator a recipe trains with: mixed precision, trackers, output dir.

    It does not accumulate: the loop does (see :class:`_Plan`). DDP does not re-send the
    buffers at every forward (``broadcast_buffers``): the methods keep their queues identical
    on every process themselves (each enqueues the same gathered keys), and BN running
    statistics, which only evaluation reads, are made rank 0's at the end (:func:`_finish`)
    and are rank 0's in every checkpoint.
    """
    return Accelerator(
        mixed_precision=cfg.mixed_precision,
        **tracker_kwargs(cfg.report_to, cfg.output_dir),  # --report-to (tensorboard when installed); train_log.jsonl always
        dataloader_config=DataLoaderConfiguration(non_blocking=True),  # pinned batches, copied without blocking
        kwargs_handlers=[DistributedDataParallelKwargs(broadcast_buffers=False)],
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
    _fast_backends(accelerator, cfg.tf32)
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
    run = _Run(cfg, accelerator, model, accelerator.unwrap_model(model),
               spec.name if spec else type(method).__name__.lower(), optimizer, data,
               _Plan.of(cfg, len(data.loader), lr), TrainState(),
               _Progress(nonfinite=NonFiniteWatch(accelerator.device)), TrainLog(accelerator, cfg.output_dir))
    accelerator.register_for_checkpointing(run.state)
    _resume(cfg, accelerator, Path(cfg.output_dir) / "checkpoints", run.state)
    if is_main_process():  # only now: the config, the method and the data were all checked
        save_config(cfg, Path(cfg.output_dir) / "config.yaml")
        run.log.start("pretrain", dataclasses.asdict(cfg))
    _print_header(run, spec.display_name if spec else type(method).__name__, threads)
    with preemption_signals() as received:  # the last checkpoint too: a second signal must not kill the save
        try:
            stopped_by = _train(run, StopAgreement(received, accelerator.num_processes), monitor)
        except BaseException:
            run.log.finish()  # a failed run's trackers are closed too
            raise
        return _finish(run, stopped_by)


# -- setting up -----------------------------------------------------------------------------

def _checked(accelerator: Accelerator, cfg: PretrainConfig) -> Accelerator:
    if accelerator.gradient_accumulation_steps != 1:
        raise ValueError(f"the accelerator accumulates {accelerator.gradient_accumulation_steps} batches itself, but the "
                         "loop does (grad_accum_steps): build it without gradient_accumulation_steps, and use "
                         "--grad-accum-steps rather than accelerate launch --gradient_accumulation_steps")
    if cfg.sync_bn and accelerator.num_processes > 1 and accelerator.device.type == "cpu":
        raise ValueError("sync_bn needs GPUs (torch's SyncBatchNorm does not run on CPU processes)")
    return check_launch(accelerator)


def _checked_views(cfg: PretrainConfig, method: Method):
    method.encoder.check_input_size(cfg.image_size)
    if cfg.probe_data:
        method.encoder.check_input_size(cfg.probe_image_size, "probe_image_size")
    transform = cfg.build_views()
    if transform.num_views != method.num_views:
        raise ValueError(f"{type(cfg).__name__}.build_views makes {transform.num_views} views per image but "
                         f"{type(method).__name__} expects {method.num_views}")
    return transform


def _fast_backends(accelerator: Accelerator, tf32: bool) -> None:
    if accelerator.device.type == "cuda":  # fixed shapes: let cuDNN pick its fastest kernels
        torch.backends.cudnn.benchmark = True
        # convolutions in TF32 (torch's own default); matmuls only when asked (--tf32): the
        # heads are a small share of a step, and the loss's queue logits q @ queue.T would
        # lose 13 mantissa bits of what scene_ssl.losses promises to compute in float32
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cuda.matmul.allow_tf32 = bool(tf32)


def _convert_model(cfg: PretrainConfig, model: nn.Module) -> nn.Module:
    if cfg.sync_bn:  # the BAM authors' setting; timm's converter keeps its fused BN + activation layers
        model = timm.layers.convert_sync_batchnorm(model)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    if cfg.compile:  # the trunks only: the method's own Python (queues, EMA, schedules) stays eager
        for backbone in model.modules():
            if isinstance(backbone, TimmBackbone):
                backbone.compile_trunk()
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
    accelerator.print(
        f"{display_name} on {cfg.backbone}: {len(run.data.dataset)} images of {cfg.data}, "
        f"{plan.steps_per_epoch} steps/epoch, {plan.total_steps} steps, lr {plan.lr:.4g} "
        f"({cfg.lr_rule(accelerator.num_processes)}), {accelerator.num_processes} process(es), {accelerator.device}"
        f"{f' ({threads} CPU thread(s))' if accelerator.device.type == 'cpu' else ''}, "
        f"mixed precision {accelerator.mixed_precision}\n"
        f"logging to {Path(cfg.output_dir) / 'train_log.jsonl'}{trackers_line(accelerator)}")
    if accelerator.num_processes == 1 and getattr(run.method, "shuffle_bn", False) and getattr(run.method, "bn_splits", 0) == 1:
        accelerator.print("note: one process with bn_splits 1: shuffle-BN cannot act (a query and its key share batch "
                          "statistics); --bn-splits 8 gives each its own BN groups, as MoCo's single-GPU practice does")
    if cfg.probe_data and cfg.probe_data != cfg.data:
        accelerator.print(f"note: the probes run on {cfg.probe_data}, not on the training data {cfg.data} "
                          "(set --probe-data, or --probe-data none to skip them)")


# -- training -------------------------------------------------------------------------------

def _train(run: _Run, stop: StopAgreement, monitor: Monitor | None) -> str | None:
    """Run epochs until ``plan.end_step``; return the signal that stopped the run, if any."""
    state, plan = run.state, run.plan
    # the bar is closed however the run ends, so that an error is printed on a line of its own
    with tqdm(total=plan.end_step, initial=state.step, disable=not is_local_main_process(),
              desc="pretrain") as bar, contextlib.closing(stop):
        if state.step == 0:  # the reference: the backbone before any step
            _monitor(run, monitor, 0)
        run.wrapped.train()
        while state.step < plan.end_step:
            if _epoch(run, stop, bar):
                return stop.who()
            if state.step % plan.steps_per_epoch == 0:  # a whole epoch is done
                _monitor(run, monitor, plan.epoch_of(state.step))
    return None


def _epoch(run: _Run, stop: StopAgreement, bar) -> bool:
    """The (rest of the) current epoch, up to ``plan.end_step``; whether a signal stopped it.
    Each optimiser step takes ``plan.forwards(step)`` loader batches."""
    cfg, state, plan, data = run.cfg, run.state, run.plan, run.data
    forwards = 0  # of the step in progress
    for batch in data.batches(run.accelerator, plan.epoch_of(state.step), plan.batches_done(state.step)):
        if data.stream is not None:
            data.stream.update(batch)
        if forwards == 0:
            _begin_step(run)
        n = plan.forwards(state.step)
        log_now = (state.step + 1) % cfg.log_every == 0 or state.step + 1 == plan.end_step
        forwards += 1
        out = _forward_backward(run, batch, n, last=forwards == n, diagnostics=log_now and forwards == n)
        if forwards < n:
            continue
        _optimizer_step(run)
        forwards = 0
        state.step += 1
        bar.update(1)
        if log_now:
            _log(run, out, bar)
        if cfg.save_every and state.step % cfg.save_every == 0 and state.step < plan.end_step:
            _check_finite(run)
            run.progress.last_checkpoint = _save(run)
        if stop():
            return True
        if state.step >= plan.end_step:
            return False
    if forwards or state.step % plan.steps_per_epoch:  # the plan and the loader disagree: never train on silently
        raise RuntimeError(f"the loader ended at step {state.step} ({forwards} forward(s) into the next): it gave fewer "
                           f"than the {plan.batches} batches per epoch it announced (damaged or missing data?)")
    return False


def _begin_step(run: _Run) -> None:
    """Before every optimiser step, the first included: its learning rate and the method's schedules."""
    lr = cosine_lr(run.state.step, run.plan.total_steps, run.plan.lr, run.plan.warmup_steps)
    for group in run.optimizer.param_groups:
        group["lr"] = lr
    run.method.begin_step(run.at())


def _forward_backward(run: _Run, batch: dict, forwards: int, *, last: bool, diagnostics: bool) -> dict[str, torch.Tensor]:
    """One forward and backward of a step of ``forwards``: its loss counts 1 / ``forwards`` of
    the step's gradient, and the gradients are all-reduced across processes only at the last."""
    batch = run.data.decode(batch)  # with --render device the JPEGs are decoded here, on the device
    warn_skipped(batch.get("skipped"), run.progress.skipped)
    views = run.data.to_views(batch)  # V x (B, 3, S, S) normalised, channels-last
    inputs = {"views": views, "index": batch["index"], "diagnostics": diagnostics}
    if run.data.labels is not None:
        inputs["label_table"] = run.data.labels
    with contextlib.nullcontext() if last else run.accelerator.no_sync(run.wrapped):
        out = run.wrapped(inputs)
        loss = out["loss"]
        run.progress.nonfinite.add(loss)  # no sync: read at log and checkpoint steps
        run.accelerator.backward(loss / forwards)
    run.progress.window_images += views[0].shape[0]
    return out


def _optimizer_step(run: _Run) -> None:
    if run.cfg.clip_grad_norm:
        run.accelerator.clip_grad_norm_(run.wrapped.parameters(), run.cfg.clip_grad_norm)
    run.optimizer.step()
    run.optimizer.zero_grad(set_to_none=True)


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
    run.progress.nonfinite.check(run.accelerator, f"step {run.state.step}", run.progress.last_checkpoint)


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
    run.log.write(logs, run.state.step)


def _monitor(run: _Run, monitor: Monitor | None, epoch: int) -> None:
    if monitor is None or not run.cfg.monitor_every or epoch % run.cfg.monitor_every:
        return
    _rank0_buffers(run)  # eval mode reads the BN statistics: every process embeds its share with rank 0's
    result = {"epoch": epoch, **monitor(run.method.encoder, run.accelerator)}  # eval-mode features, shared work
    run.progress.monitor.append(result)
    _write_logs(run, {k: v for k, v in result.items() if k != "epoch"})
    if is_main_process():
        tqdm.write(f"epoch {epoch}: " + ", ".join(f"{k} {v:.2f}" for k, v in result.items() if k != "epoch"))


def _rank0_buffers(run: _Run) -> None:
    """Rank 0's buffers on every process: DDP does not broadcast them (see make_accelerator), so
    the BN running statistics are each process's own until here."""
    if run.accelerator.num_processes > 1:
        for buffer in run.method.buffers():
            torch.distributed.broadcast(buffer.data, src=0)


def _finish(run: _Run, stopped_by: str | None) -> PretrainResult:
    accelerator, state, plan = run.accelerator, run.state, run.plan
    _check_finite(run)
    _rank0_buffers(run)  # end with rank 0's BN statistics everywhere, as in every checkpoint
    checkpoint = _save(run)
    skipped = len(_all_skipped(run))
    if skipped:
        accelerator.print(f"skipped {skipped} unreadable image(s) (see the warnings above)")
    if stopped_by:
        accelerator.print(f"{stopped_by} received: stopped at step {state.step} of {plan.total_steps} with a checkpoint "
                          f"({checkpoint}); the same command with --resume auto goes on from there")
    elif state.step < plan.total_steps:
        accelerator.print(f"stopped at step {state.step} of {plan.total_steps} (stop_after); go on with --resume auto")
    run.log.finish()  # the curves are complete; the process group stays for the probes
    return PretrainResult(run.method, run.name, state.step, plan.total_steps, run.progress.last_logs, checkpoint,
                          Path(run.cfg.output_dir), stopped_by, skipped, run.progress.monitor, accelerator)
