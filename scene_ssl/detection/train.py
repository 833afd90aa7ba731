"""Fine-tune one detector and evaluate it: a plain Accelerate loop in iterations.

SGD with a linear warm-up and the lr divided by 10 at 2/3 and 8/9 of the schedule
(Detectron2's 60k / 80k of 90k), multi-scale training sizes, mixed precision, any number of
processes, atomic checkpoints with ``--resume auto`` and checkpoint-and-stop on SIGTERM /
SIGUSR1 (the same pieces as pretraining), then COCO AP on the validation split with every
process evaluating a shard of the images.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import torch
from accelerate import Accelerator, DistributedDataParallelKwargs
from torch import nn
from tqdm.auto import tqdm

from ..data.views import warn_skipped
from ..data.workers import use_cpu_threads, worker_count
from ..trackers import tracker_kwargs
from ..processes import check_launch, rank_and_world_size
from ..train.iterations import (EpochData, FinetuneResult, IterationPlan, shuffled_loader, sync_norm,
                                train_iterations)
from ..schedule import schedule_iterations, step_lr_factor
from .config import DetectionConfig
from .data import DetectionDataset, DetectionSet, collate_detection
from .evaluate import coco_ap, gather_results, to_coco_results
from .voc_eval import voc_detection_ap
from .model import build_detector

__all__ = ["FinetuneResult", "finetune_detector", "evaluate_detector", "make_detection_accelerator"]


def make_detection_accelerator(cfg: DetectionConfig) -> Accelerator:
    # a batch without a positive RoI leaves the mask head unused: DDP must not wait for it
    return check_launch(Accelerator(mixed_precision=cfg.mixed_precision, **tracker_kwargs(cfg.report_to, cfg.output_dir),
                                    kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)]))


def _loader(cfg: DetectionConfig, data: DetectionSet, accelerator: Accelerator) -> EpochData:
    dataset = DetectionDataset(data, train=True, masks=cfg.task == "segm", seed=cfg.seed)
    if len(dataset) < cfg.batch_size * accelerator.num_processes:
        raise ValueError(f"{cfg.data} has {len(dataset)} annotated {cfg.train_split} images, fewer than one global batch")
    loader, sampler = shuffled_loader(dataset, cfg.batch_size, cfg.num_workers, cfg.seed, collate_detection)
    return EpochData(loader, sampler, dataset)


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
    model = sync_norm(model, cfg.norm, accelerator)
    total_batch = cfg.batch_size * accelerator.num_processes
    total = schedule_iterations(cfg.schedule, total_batch)
    # a scaled schedule (1x, 24000@16) scales its warm-up with the batch like its length; a plain count keeps it
    scaled = not cfg.schedule.strip().isdigit()
    warmup = min(total, round(cfg.warmup_iters * 16 / total_batch) if scaled else cfg.warmup_iters)
    lr = cfg.base_lr * total_batch / 16
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    data = _loader(cfg, train_data, accelerator)
    model, optimizer, data.loader = accelerator.prepare(model, optimizer, data.loader)
    accelerator.print(f"fine-tuning {cfg.task} on {source}: {len(data.dataset)} images, {total} iterations at "
                      f"{total_batch} images, lr {lr:.4g} (warm-up {warmup}), norm {cfg.norm}"
                      + (f", {threads} CPU thread(s)" if accelerator.device.type == "cpu" else ""))
    plan = IterationPlan(total, lr, lambda it: step_lr_factor(it, total, warmup, cfg.lr_steps), cfg.log_every, cfg.save_every,
                         cfg.keep_checkpoints, cfg.resume, "detection")
    skipped: set = set()

    def losses(batch) -> dict:
        images_list, targets = batch
        for target in targets:
            warn_skipped(target.pop("skipped"), skipped)
        return model(images_list, targets)

    run = train_iterations(accelerator, model, optimizer, data, plan, out_dir, losses, lambda batch: len(batch[0]),
                           config=vars(cfg))
    unwrapped = accelerator.unwrap_model(model)
    if run.stopped_by:
        return FinetuneResult(unwrapped, run.iterations, total, {}, run.images_per_s, run.stopped_by)
    metrics = evaluate_detector(unwrapped, val_data, cfg)
    return FinetuneResult(unwrapped, run.iterations, total, metrics, run.images_per_s)


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
