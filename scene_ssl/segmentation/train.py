"""Fine-tune one segmentation model and evaluate it, on the transfer recipes' iteration loop.

SGD on every parameter (mmseg's), the poly or step schedule, mixed precision, any number of
processes, checkpoints with ``--resume auto`` and checkpoint-and-stop on SIGTERM / SIGUSR1
(:func:`scene_ssl.train.iterations.train_iterations`, shared with detection), the
cross-entropy of each head at the labels' size (mmseg's: the mean over all pixels, ignored
ones counting 0), then mIoU / mAcc / aAcc with every process evaluating a shard.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from accelerate import Accelerator, DistributedDataParallelKwargs
from torch import Tensor
from tqdm.auto import tqdm

from ..data.semantic import IGNORE, SegmentationSet
from ..data.views import warn_skipped
from ..data.workers import use_cpu_threads, worker_count
from ..processes import check_launch, rank_and_world_size
from ..trackers import tracker_kwargs
from ..schedule import poly_lr_factor, schedule_iterations, step_lr_factor
from ..train.iterations import EpochData, FinetuneResult, IterationPlan, shuffled_loader, sync_norm, train_iterations
from .config import SegmentationConfig
from .data import Pipeline, SegmentationDataset, collate_segmentation
from .inference import image_logits
from .metrics import class_areas, segmentation_scores, sum_over_processes
from .model import Segmenter, build_segmenter

__all__ = ["finetune_segmenter", "evaluate_segmenter", "make_segmentation_accelerator", "segmentation_loss", "pipeline_of"]


def make_segmentation_accelerator(cfg: SegmentationConfig) -> Accelerator:
    # a ViT's features_only trunk may hold parameters its last maps do not use: DDP must not wait for them
    return check_launch(Accelerator(mixed_precision=cfg.mixed_precision, **tracker_kwargs(cfg.report_to, cfg.output_dir),
                                    kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)]))


def segmentation_loss(logits: Tensor, label: Tensor, align_corners: bool = False) -> Tensor:
    """Cross-entropy of ``logits`` resized to ``label``'s size, mmseg's mean over all pixels
    (ignored ones count 0: a crop with much padding or ignore weighs less)."""
    logits = F.interpolate(logits.float(), size=label.shape[-2:], mode="bilinear", align_corners=align_corners)
    return F.cross_entropy(logits, label, ignore_index=IGNORE, reduction="sum") / label.numel()


def pipeline_of(cfg: SegmentationConfig, data_config: dict) -> Pipeline:
    """The data pipeline of a config, normalised like the backbone was pretrained."""
    return Pipeline(tuple(cfg.scale), tuple(cfg.ratio_range), tuple(cfg.crop_size), cfg.cat_max_ratio, cfg.flip,
                    cfg.photometric, tuple(cfg.test_scale), tuple(data_config["mean"]), tuple(data_config["std"]))


def _lr_factor(cfg: SegmentationConfig, total: int):
    if cfg.lr_policy == "step":
        return lambda it: step_lr_factor(it, total, 0, cfg.lr_steps)
    return lambda it: poly_lr_factor(it, total, cfg.power, cfg.min_lr / cfg.lr)


def finetune_segmenter(cfg: SegmentationConfig, source: str, train_data: SegmentationSet, val_data: SegmentationSet,
                       out_dir: Path, accelerator: Accelerator) -> FinetuneResult:
    """Train a segmentation model on ``source``'s backbone for the schedule, then evaluate it."""
    threads = use_cpu_threads(cfg.threads, worker_count(cfg.num_workers), accelerator.device)
    torch.manual_seed(cfg.seed)
    model, data_config = build_segmenter(
        source, train_data.num_classes, head=cfg.head, output_stride=cfg.output_stride, channels=cfg.head_channels,
        num_convs=cfg.head_convs, dilation=cfg.head_dilation, concat_input=cfg.concat_input, pool_scales=cfg.pool_scales,
        dropout=cfg.dropout, aux_channels=cfg.aux_channels, aux=cfg.aux_weight > 0, align_corners=cfg.align_corners)
    model = sync_norm(model, cfg.norm, accelerator)
    pipeline = pipeline_of(cfg, data_config)
    total_batch = cfg.batch_size * accelerator.num_processes
    total = schedule_iterations(cfg.schedule, total_batch)
    optimizer = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    dataset = SegmentationDataset(train_data, pipeline, train=True, seed=cfg.seed)
    if len(dataset) < total_batch:
        raise ValueError(f"{cfg.data} has {len(dataset)} {cfg.train_split} images, fewer than one global batch")
    loader, sampler = shuffled_loader(dataset, cfg.batch_size, cfg.num_workers, cfg.seed, collate_segmentation)
    model, optimizer, loader = accelerator.prepare(model, optimizer, loader)
    accelerator.print(f"fine-tuning {cfg.head.upper()} (output stride {cfg.output_stride}) on {source}: {len(dataset)} "
                      f"images, {total} iterations at {total_batch} images, lr {cfg.lr:.4g} ({cfg.lr_policy}), norm {cfg.norm}"
                      + (f", {threads} CPU thread(s)" if accelerator.device.type == "cpu" else ""))
    unwrapped: Segmenter = accelerator.unwrap_model(model)
    skipped: set = set()

    def losses(batch) -> dict[str, Tensor]:
        warn_skipped(batch["skipped"], skipped)
        out = model(batch["image"])
        result = {"loss_seg": segmentation_loss(out["seg"], batch["label"], cfg.align_corners)}
        if "aux" in out:
            result["loss_aux"] = cfg.aux_weight * segmentation_loss(out["aux"], batch["label"], cfg.align_corners)
        return result

    def every(it: int) -> dict[str, float]:
        if not cfg.eval_every or it % cfg.eval_every or it >= total:
            return {}
        scores = evaluate_segmenter(unwrapped, val_data, cfg, pipeline)["sem_seg"]
        return {k: scores[k] for k in ("mIoU", "mAcc", "aAcc")}

    plan = IterationPlan(total, cfg.lr, _lr_factor(cfg, total), cfg.log_every, cfg.save_every, cfg.keep_checkpoints,
                         cfg.resume, "segmentation")
    run = train_iterations(accelerator, model, optimizer, EpochData(loader, sampler, dataset), plan, out_dir, losses,
                           lambda batch: len(batch["image"]), every, config=vars(cfg))
    if run.stopped_by:
        return FinetuneResult(unwrapped, run.iterations, total, {}, run.images_per_s, run.stopped_by)
    return FinetuneResult(unwrapped, run.iterations, total, evaluate_segmenter(unwrapped, val_data, cfg, pipeline),
                          run.images_per_s)


@torch.no_grad()
def evaluate_segmenter(model: Segmenter, data: SegmentationSet, cfg: SegmentationConfig,
                       pipeline: Pipeline) -> dict[str, dict]:
    """``{"sem_seg": {"mIoU", "mAcc", "aAcc", "per_class"}}`` of ``model`` (unwrapped) on ``data``:
    each process predicts every n-th image (``cfg.test_mode`` at ``cfg.test_scale``, scored at the
    label's size), the areas are summed over processes, and every process returns the same numbers."""
    rank, world = rank_and_world_size()
    device = next(model.parameters()).device
    dataset = SegmentationDataset(data, pipeline, train=False)
    count = min(len(dataset), cfg.eval_images or len(dataset))
    was_training = model.training
    model.eval()
    areas = torch.zeros(4, data.num_classes, dtype=torch.int64, device=device)
    left_out = torch.zeros((), dtype=torch.int64, device=device)
    for i in tqdm(range(rank, count, world), desc="evaluate", leave=False, disable=rank != 0):
        item = dataset[i]
        if item is None:
            left_out += 1
            continue
        label = item["label"].to(device)
        logits = image_logits(model.logits, item["image"][None].to(device), data.num_classes, tuple(label.shape),
                              mode=cfg.test_mode, crop=tuple(cfg.test_crop), stride=tuple(cfg.test_stride),
                              align_corners=cfg.align_corners)
        areas += class_areas(logits.argmax(1)[0], label, data.num_classes)
    model.train(was_training)
    areas, left_out = sum_over_processes(areas), int(sum_over_processes(left_out))
    if left_out and rank == 0:
        warnings.warn(f"{left_out} unreadable image(s) left out of the evaluation", stacklevel=2)
    return {"sem_seg": segmentation_scores(areas, data.class_names)}
