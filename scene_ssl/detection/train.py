"""Fine-tune one detector and evaluate it: a plain Accelerate loop in iterations.

SGD with a linear warm-up and the lr divided by 10 at 2/3 and 8/9 of the schedule
(Detectron2's 60k / 80k of 90k), multi-scale training sizes, mixed precision, any number of
processes, atomic checkpoints with ``--resume auto`` and checkpoint-and-stop on SIGTERM /
SIGUSR1 (the same pieces as pretraining), then COCO AP on the validation split with every
process evaluating a shard of the images.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import time
import warnings
from pathlib import Path

import timm
import torch
from accelerate import Accelerator, DistributedDataParallelKwargs
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from ..data import EpochShuffleSampler, init_worker, worker_count
from ..data.views import warn_skipped
from ..data.workers import use_cpu_threads
from ..models import rank_and_world_size
from ..train.checkpoint import TrainState, find_checkpoint, save_checkpoint
from ..train.data import epoch_batches
from ..nonfinite import NonFiniteWatch
from ..processes import check_launch
from ..train.preemption import StopAgreement, preemption_signals
from .config import DetectionConfig, schedule_iterations
from .data import DetectionDataset, DetectionSet, collate_detection
from .evaluate import coco_ap, gather_results, to_coco_results
from .voc_eval import voc_detection_ap
from .model import build_detector

__all__ = ["FinetuneResult", "finetune_detector", "evaluate_detector", "make_detection_accelerator", "lr_factor"]


@dataclasses.dataclass
class FinetuneResult:
    model: nn.Module  # the trained detector (unwrapped)
    iterations: int
    total_iterations: int
    metrics: dict[str, dict[str, float]]  # {"bbox": {"AP": ...}, "segm": {...}}; empty when stopped early
    images_per_s: float
    stopped_by: str | None = None

    @property
    def finished(self) -> bool:
        return self.iterations >= self.total_iterations


def make_detection_accelerator(cfg: DetectionConfig) -> Accelerator:
    # a batch without a positive RoI leaves the mask head unused: DDP must not wait for it
    return check_launch(Accelerator(mixed_precision=cfg.mixed_precision,
                                    kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)]))


def lr_factor(it: int, total: int, warmup: int, steps: tuple[float, ...] = (2 / 3, 8 / 9)) -> float:
    """Linear warm-up from 0.001, then x0.1 at each fraction ``steps`` of ``total`` iterations
    (Detectron2's 1x: 60k and 80k of 90k).

    Example:
        >>> [lr_factor(i, 90, 10) for i in (0, 10, 60, 80)]
        [0.001, 1.0, 0.1, 0.010000000000000002]
    """
    factor = 0.1 ** sum(it >= round(total * f) for f in steps)
    if it < warmup:
        factor *= 0.001 + (1 - 0.001) * it / warmup
    return factor


def _loader(cfg: DetectionConfig, data: DetectionSet,
            accelerator: Accelerator) -> tuple[DetectionDataset, DataLoader, EpochShuffleSampler]:
    dataset = DetectionDataset(data, train=True, masks=cfg.task == "segm", seed=cfg.seed)
    if len(dataset) < cfg.batch_size * accelerator.num_processes:
        raise ValueError(f"{cfg.data} has {len(dataset)} annotated {cfg.train_split} images, fewer than one global batch")
    workers = worker_count(cfg.num_workers)
    sampler = EpochShuffleSampler(len(dataset), seed=cfg.seed)
    loader = DataLoader(dataset, batch_size=cfg.batch_size, sampler=sampler,
                        drop_last=True, num_workers=workers, collate_fn=collate_detection,
                        worker_init_fn=init_worker, persistent_workers=workers > 0,
                        generator=torch.Generator().manual_seed(cfg.seed))  # its own: starting an epoch leaves the global RNG alone
    return dataset, loader, sampler


def finetune_detector(cfg: DetectionConfig, source: str, train_data: DetectionSet, val_data: DetectionSet,
                      out_dir: Path, accelerator: Accelerator) -> FinetuneResult:
    """Train a detector on ``source``'s backbone for the schedule, then evaluate it."""
    threads = use_cpu_threads(cfg.threads, worker_count(cfg.num_workers), accelerator.device)
    torch.manual_seed(cfg.seed)
    model = build_detector(source, train_data.num_classes, task=cfg.task, norm=cfg.norm, architecture=cfg.architecture,
                           box_head=cfg.box_head, extra_norm=cfg.extra_norm, fpn_channels=cfg.fpn_channels,
                           anchor_scale=cfg.anchor_scale, train_sizes=cfg.train_sizes, max_size=cfg.max_size,
                           rois_per_image=cfg.rois_per_image, proposals=(cfg.proposals_train, cfg.proposals_test),
                           pre_nms=(cfg.pre_nms_train or cfg.proposals_train, cfg.pre_nms_test or cfg.proposals_test))
    if cfg.norm == "syncbn":
        if accelerator.num_processes > 1 and accelerator.device.type == "cpu":
            raise ValueError("norm syncbn needs GPUs with several processes (torch's SyncBatchNorm does not run on CPU); use --norm bn")
        model = timm.layers.convert_sync_batchnorm(model)
    total_batch = cfg.batch_size * accelerator.num_processes
    total = schedule_iterations(cfg.schedule, total_batch)
    # a scaled schedule (1x, 24000@16) scales its warm-up with the batch like its length; a plain count keeps it
    scaled = not cfg.schedule.strip().isdigit()
    warmup = min(total, round(cfg.warmup_iters * 16 / total_batch) if scaled else cfg.warmup_iters)
    lr = cfg.base_lr * total_batch / 16
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    dataset, loader, sampler = _loader(cfg, train_data, accelerator)
    model, optimizer, loader = accelerator.prepare(model, optimizer, loader)
    state = TrainState()
    accelerator.register_for_checkpointing(state)
    ckpt_dir = out_dir / "checkpoints"
    path = find_checkpoint(cfg.resume, ckpt_dir, accelerator.print) if cfg.resume else None
    if path is not None:
        accelerator.load_state(str(path))
        accelerator.print(f"resumed from {path} at iteration {state.step}")
    accelerator.print(f"fine-tuning {cfg.task} on {source}: {len(dataset)} images, {total} iterations at "
                      f"{total_batch} images, lr {lr:.4g} (warm-up {warmup}), norm {cfg.norm}"
                      + (f", {threads} CPU thread(s)" if accelerator.device.type == "cpu" else ""))
    with preemption_signals() as received:  # the last checkpoint too: a second signal must not kill the save
        images_per_s, stopped_by = _train(cfg, accelerator, model, optimizer, _Data(loader, sampler, dataset), state, total,
                                          warmup, lr, out_dir, StopAgreement(received, accelerator.num_processes))
        unwrapped = accelerator.unwrap_model(model)
        if stopped_by is None and state.step < total:
            stopped_by = "stop"
        save_checkpoint(accelerator, ckpt_dir, state.step, cfg.keep_checkpoints)
    if stopped_by:
        accelerator.print(f"{stopped_by}: stopped at iteration {state.step} of {total} with a checkpoint; "
                          "the same command with --resume auto goes on")
        return FinetuneResult(unwrapped, state.step, total, {}, images_per_s, stopped_by)
    metrics = evaluate_detector(unwrapped, val_data, cfg)
    return FinetuneResult(unwrapped, state.step, total, metrics, images_per_s)


@dataclasses.dataclass
class _Data:
    """The training batches: the prepared loader, its sampler and dataset (their epoch is set directly)."""

    loader: DataLoader
    sampler: EpochShuffleSampler
    dataset: DetectionDataset

    def epoch(self, accelerator: Accelerator, step: int) -> DataLoader:
        """The rest of the epoch that iteration ``step`` falls in."""
        epoch, done = divmod(step, len(self.loader))
        return epoch_batches(accelerator, self.loader, self.sampler, self.dataset, epoch, done)


def _train(cfg, accelerator, model, optimizer, data: _Data, state, total, warmup, lr, out_dir, stop: StopAgreement):
    """Iterate until ``total``; return (images/s of the last log window, the signal that stopped it or None)."""
    bar = tqdm(total=total, initial=state.step, desc="detection", disable=not accelerator.is_local_main_process)
    model.train()
    window, images, ips = time.perf_counter(), 0, 0.0
    log = out_dir / "train_log.jsonl"
    nonfinite, last_checkpoint, skipped = NonFiniteWatch(accelerator.device), None, set()
    with bar, contextlib.closing(stop):
        while state.step < total:
            for images_list, targets in data.epoch(accelerator, state.step):
                for target in targets:
                    warn_skipped(target.pop("skipped"), skipped)
                for group in optimizer.param_groups:
                    group["lr"] = lr * lr_factor(state.step, total, warmup, cfg.lr_steps)
                losses = model(images_list, targets)
                loss = sum(losses.values())
                nonfinite.add(loss)
                accelerator.backward(loss)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                state.step += 1
                images += len(images_list) * accelerator.num_processes
                bar.update(1)
                if state.step % cfg.log_every == 0 or state.step == total:
                    now = time.perf_counter()
                    ips, window, images = images / (now - window), now, 0
                    logs = {k: float(v.detach()) for k, v in losses.items()}
                    logs.update(loss=float(loss.detach()), lr=optimizer.param_groups[0]["lr"], images_per_s=ips)
                    nonfinite.check(accelerator, f"iteration {state.step}", last_checkpoint)
                    bar.set_postfix(loss=f"{logs['loss']:.3g}")
                    if accelerator.is_main_process:
                        out_dir.mkdir(parents=True, exist_ok=True)
                        with open(log, "a") as f:
                            f.write(json.dumps({"iteration": state.step, **logs}) + "\n")
                if cfg.save_every and state.step % cfg.save_every == 0 and state.step < total:
                    nonfinite.check(accelerator, f"iteration {state.step}", last_checkpoint)
                    last_checkpoint = save_checkpoint(accelerator, out_dir / "checkpoints", state.step, cfg.keep_checkpoints)
                if stop():
                    return ips, stop.who()
                if state.step >= total:
                    break
    return ips, None


@torch.no_grad()
def evaluate_detector(model: nn.Module, data: DetectionSet, cfg: DetectionConfig) -> dict[str, dict[str, float]]:
    """AP of ``model`` (unwrapped) on ``data`` by the data's own protocol (COCOeval; VOC AP for
    ``voc:``): each process predicts every n-th image at ``cfg.test_size``, the results are
    gathered, and every process returns the same numbers."""
    rank, world = rank_and_world_size()
    device = next(model.parameters()).device
    dataset = DetectionDataset(data, train=False)
    if cfg.eval_images:
        dataset.image_ids = dataset.image_ids[: cfg.eval_images]
    was_training, sizes = model.training, model.transform.min_size
    model.eval()
    model.transform.min_size = (cfg.test_size,)
    results = []
    shard, n = list(range(rank, len(dataset), world)), cfg.eval_batch_size
    bar = tqdm(total=len(shard), desc="evaluate", leave=False, disable=rank != 0)
    unreadable = []  # image ids left out of the evaluation
    for start in range(0, len(shard), n):
        indices = shard[start:start + n]
        items = [dataset[i] for i in indices]
        unreadable += [dataset.image_ids[i] for i, item in zip(indices, items) if item is None]
        items = [item for item in items if item is not None]
        predictions = model([pixels.to(device) for pixels, _ in items]) if items else []
        for (_, target), prediction in zip(items, predictions):
            results += to_coco_results(int(target["image_id"]), prediction, data.category_ids)
        bar.update(len(indices))
    bar.close()
    model.transform.min_size = sizes
    model.train(was_training)
    results = gather_results(results)
    left_out = set(gather_results(unreadable))
    image_ids = [i for i in dataset.image_ids if i not in left_out]
    if left_out and rank == 0:
        warnings.warn(f"{len(left_out)} unreadable image(s) left out of the evaluation, their boxes with them "
                      f"(e.g. {data.sources[min(left_out)]})", stacklevel=2)
    if data.metric == "voc":  # the VOC protocol's metric (boxes only)
        return {"bbox": voc_detection_ap(data.coco, results, voc07=data.voc07, image_ids=image_ids)}
    iou_types = ("bbox", "segm") if cfg.task == "segm" else ("bbox",)
    return {t: coco_ap(data.coco, results, t, image_ids=image_ids) for t in iou_types}
