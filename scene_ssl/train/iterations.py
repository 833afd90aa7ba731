"""Training in iterations, for the transfer recipes (detection, segmentation): one loop.

A plain Accelerate loop over a map-style loader for a number of iterations: the lr set
before every iteration from a schedule, atomic checkpoints every ``save_every`` iterations
and ``--resume auto`` (the data order of a resumed run is the uninterrupted one's),
checkpoint-and-stop on SIGTERM / SIGUSR1 agreed by all processes, a non-finite loss ending
every process with one line, and ``train_log.jsonl`` (+ trackers) every ``log_every``
iterations. What a batch means is the caller's: ``losses(batch)`` -> named loss tensors.
"""
from __future__ import annotations

import contextlib
import dataclasses
import time
from pathlib import Path
from typing import Any, Callable

import timm
import torch
from accelerate import Accelerator
from torch import Tensor, nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from ..processes import is_local_main_process
from ..data import EpochShuffleSampler, init_worker, worker_count
from ..nonfinite import NonFiniteWatch
from .checkpoint import TrainState, find_checkpoint, save_checkpoint
from .data import epoch_batches
from .preemption import StopAgreement, preemption_signals
from .train_log import TrainLog, run_name

__all__ = ["EpochData", "IterationPlan", "IterationRun", "FinetuneResult", "shuffled_loader", "sync_norm",
           "train_iterations"]


@dataclasses.dataclass
class EpochData:
    """The training batches: the prepared loader, its sampler and dataset (their epoch is set directly)."""

    loader: DataLoader
    sampler: EpochShuffleSampler
    dataset: Any

    def epoch(self, accelerator: Accelerator, step: int) -> DataLoader:
        """The rest of the epoch that iteration ``step`` falls in."""
        epoch, done = divmod(step, len(self.loader))
        return epoch_batches(accelerator, self.loader, self.sampler, self.dataset, epoch, done)


def shuffled_loader(dataset, batch_size: int, num_workers: int, seed: int, collate_fn=None) -> tuple[DataLoader, EpochShuffleSampler]:
    """A loader of ``dataset`` in a seeded order that changes per epoch, whole batches only."""
    workers = worker_count(num_workers)
    sampler = EpochShuffleSampler(len(dataset), seed=seed)
    loader = DataLoader(dataset, batch_size=batch_size, sampler=sampler, drop_last=True, num_workers=workers,
                        collate_fn=collate_fn, worker_init_fn=init_worker, persistent_workers=workers > 0,
                        generator=torch.Generator().manual_seed(seed))  # its own: starting an epoch leaves the global RNG alone
    return loader, sampler


@dataclasses.dataclass
class FinetuneResult:
    """A transfer model trained and evaluated (or stopped early, then without metrics)."""

    model: nn.Module  # the trained model (unwrapped)
    iterations: int
    total_iterations: int
    metrics: dict[str, dict[str, float]]  # {"bbox": {"AP": ...}, "segm": {...}}; empty when stopped early
    images_per_s: float
    stopped_by: str | None = None

    @property
    def finished(self) -> bool:
        return self.iterations >= self.total_iterations


def sync_norm(model: nn.Module, norm: str, accelerator: Accelerator) -> nn.Module:
    """``model`` with SyncBatchNorm for ``norm == "syncbn"`` (refused on several CPU processes,
    where torch's SyncBatchNorm does not run), else as it is."""
    if norm != "syncbn":
        return model
    if accelerator.num_processes > 1 and accelerator.device.type == "cpu":
        raise ValueError("norm syncbn needs GPUs with several processes (torch's SyncBatchNorm does not run on CPU); use --norm bn")
    return timm.layers.convert_sync_batchnorm(model)


@dataclasses.dataclass
class IterationPlan:
    """How long and how: ``total`` iterations, the lr at iteration i = ``lr * factor(i)``."""

    total: int
    lr: float
    factor: Callable[[int], float]
    log_every: int = 20
    save_every: int = 0  # 0: a checkpoint only at the end
    keep_checkpoints: int = 1
    resume: str | None = None  # auto | latest | a checkpoint folder
    name: str = "train"  # the progress bar's


@dataclasses.dataclass
class IterationRun:
    iterations: int
    total: int
    images_per_s: float
    stopped_by: str | None = None  # the signal (or "stop") that ended it early


def train_iterations(accelerator: Accelerator, model: nn.Module, optimizer: torch.optim.Optimizer, data: EpochData,
                     plan: IterationPlan, out_dir: Path, losses: Callable[[Any], dict[str, Tensor]],
                     images: Callable[[Any], int], every: Callable[[int], dict[str, float]] | None = None,
                     config: dict | None = None) -> IterationRun:
    """Train the prepared ``model`` for ``plan.total`` iterations (or the rest, resumed from
    ``out_dir/checkpoints``); ``images(batch)`` counts a batch's images, and ``every(i)``, called
    on every process after iteration i, returns numbers to log then (e.g. a periodic evaluation).
    The accelerator's trackers (``--report-to``) log under ``logs/<out_dir's name>`` with ``config``."""
    state = TrainState()
    accelerator.register_for_checkpointing(state)
    ckpt_dir = out_dir / "checkpoints"
    path = find_checkpoint(plan.resume, ckpt_dir, accelerator.print) if plan.resume else None
    if path is not None:
        accelerator.load_state(str(path))
        accelerator.print(f"resumed from {path} at iteration {state.step}")
    log = TrainLog(accelerator, out_dir, "iteration")
    log.start(run_name(out_dir), config or {})
    try:
        with preemption_signals() as received:  # the last checkpoint too: a second signal must not kill the save
            loop = _Loop(accelerator, model, optimizer, data, plan, out_dir, state, log, losses, images, every)
            images_per_s, stopped_by = loop.run(StopAgreement(received, accelerator.num_processes))
            if stopped_by is None and state.step < plan.total:
                stopped_by = "stop"
            save_checkpoint(accelerator, ckpt_dir, state.step, plan.keep_checkpoints)
    finally:  # a failed run's trackers are closed too (W&B and MLflow runs would stay open)
        log.finish()
    if stopped_by:
        accelerator.print(f"{stopped_by}: stopped at iteration {state.step} of {plan.total} with a checkpoint; "
                          "the same command with --resume auto goes on")
    return IterationRun(state.step, plan.total, images_per_s, stopped_by)


@dataclasses.dataclass
class _Loop:
    accelerator: Accelerator
    model: nn.Module
    optimizer: torch.optim.Optimizer
    data: EpochData
    plan: IterationPlan
    out_dir: Path
    state: TrainState
    log: TrainLog
    losses: Callable
    images: Callable
    every: Callable | None

    def run(self, stop: StopAgreement) -> tuple[float, str | None]:
        """Iterate until the plan's end; (images/s of the last log window, the signal that stopped it or None)."""
        accelerator, plan, state = self.accelerator, self.plan, self.state
        bar = tqdm(total=plan.total, initial=state.step, desc=plan.name, disable=not is_local_main_process())
        self.model.train()
        self.window, self.seen, self.ips = time.perf_counter(), 0, 0.0
        self.nonfinite, self.last_checkpoint = NonFiniteWatch(accelerator.device), None
        with bar, contextlib.closing(stop):
            while state.step < plan.total:
                for batch in self.data.epoch(accelerator, state.step):
                    self._step(batch, bar)
                    if stop():
                        return self.ips, stop.who()
                    if state.step >= plan.total:
                        break
        return self.ips, None

    def _step(self, batch, bar) -> None:
        accelerator, plan, state = self.accelerator, self.plan, self.state
        for group in self.optimizer.param_groups:
            group["lr"] = plan.lr * plan.factor(state.step)
        losses = self.losses(batch)
        loss = sum(losses.values())
        self.nonfinite.add(loss)
        accelerator.backward(loss)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        state.step += 1
        self.seen += self.images(batch) * accelerator.num_processes
        bar.update(1)
        logs = {}
        if state.step % plan.log_every == 0 or state.step == plan.total:
            now = time.perf_counter()
            self.ips, self.window, self.seen = self.seen / (now - self.window), now, 0
            logs = {k: float(v.detach()) for k, v in losses.items()}
            logs.update(loss=float(loss.detach()), lr=self.optimizer.param_groups[0]["lr"], images_per_s=self.ips)
            self.nonfinite.check(accelerator, f"iteration {state.step}", self.last_checkpoint)
            bar.set_postfix(loss=f"{logs['loss']:.3g}")
        if self.every is not None:
            logs.update(self.every(state.step))
        if logs:
            self.log.write(logs, state.step)
        if plan.save_every and state.step % plan.save_every == 0 and state.step < plan.total:
            self.nonfinite.check(accelerator, f"iteration {state.step}", self.last_checkpoint)
            self.last_checkpoint = save_checkpoint(accelerator, self.out_dir / "checkpoints", state.step,
                                                   plan.keep_checkpoints)
