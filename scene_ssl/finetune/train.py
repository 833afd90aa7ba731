"""Fine-tune a whole backbone with a linear classifier, then score it: one run of a protocol.

A plain Accelerate loop in optimiser steps: SGD (Nesterov) with a cosine schedule over the
run, the backbone and the head trained together (BN in training mode), cross-entropy for
single labels and binary cross-entropy for multi-label data (VOC's difficult-only labels
left out), then the test split predicted by every process in shards and gathered by index.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import datasets
import timm
import torch
import torch.nn.functional as F
from accelerate import Accelerator
from torch import Tensor, nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from ..data import EpochShuffleSampler, init_worker, worker_count
from ..data.views import warn_skipped
from ..loading import load_backbone
from ..probe.core import score
from ..probe.features import gather_indexed, unique_by_index
from ..schedule import cosine_lr
from ..transforms import ViewNormalizer
from .config import FinetuneConfig
from .data import FinetuneImages, collate_finetune
from ..processes import is_local_main_process
from ..train.train_log import TrainLog, run_name

__all__ = ["Classifier", "finetune_once", "predict_and_score", "Run", "chosen_metric", "metric_names"]


class Classifier(nn.Module):
    """A backbone (:class:`~scene_ssl.models.TimmBackbone`) and a linear head on its pooled
    features; ``forward`` takes uint8 (B, S, S, 3) pixels and normalises them as the backbone's
    data config says."""

    def __init__(self, backbone: nn.Module, num_classes: int) -> None:
        super().__init__()
        data_cfg = timm.data.resolve_model_data_config(backbone.model)
        self.backbone, self.normalize = backbone, ViewNormalizer(data_cfg["mean"], data_cfg["std"])
        self.head = nn.Linear(backbone.num_features, num_classes)

    def forward(self, pixels: Tensor) -> Tensor:
        return self.head(self.backbone(self.normalize(pixels.permute(0, 3, 1, 2))))  # (B, C)


@dataclasses.dataclass
class Run:
    """What one fine-tuning run gives: the test metrics, and the trained classifier (unwrapped)."""

    metrics: dict[str, float]
    model: Classifier


def _loss(logits: Tensor, target: Tensor, single: bool) -> Tensor:
    if single:
        return F.cross_entropy(logits.float(), target)
    counted = target >= 0
    return F.binary_cross_entropy_with_logits(logits.float()[counted], target[counted])


def _steps(cfg: FinetuneConfig, batches_per_epoch: int) -> int:
    return cfg.steps if cfg.steps is not None else cfg.epochs * batches_per_epoch


def finetune_once(source: str, train: datasets.Dataset, test: datasets.Dataset, cfg: FinetuneConfig, *, single: bool,
                  lr: float, weight_decay: float, seed: int, accelerator: Accelerator, desc: str = "fine-tune",
                  log_dir: Path | None = None) -> Run:
    """Fine-tune ``source``'s backbone on ``train`` for the configured steps; score on ``test``.
    With ``log_dir``, the loss and lr go to its ``train_log.jsonl`` and the trackers every ``cfg.log_every`` steps."""
    torch.manual_seed(seed)
    largest = cfg.mode == "largest"
    images = FinetuneImages(train, cfg.image_size, train=True, single=single, largest=largest, seed=seed,
                            interpolation=cfg.interpolation)
    model = Classifier(load_backbone(source), images.num_classes)
    per_process = cfg.batch_size // accelerator.num_processes
    if per_process < 1 or len(images) < cfg.batch_size:
        raise ValueError(f"batch_size {cfg.batch_size} must be at least the {accelerator.num_processes} processes and at "
                         f"most the {len(images)} training images")
    workers = worker_count(cfg.num_workers)
    sampler = EpochShuffleSampler(len(images), seed=seed)
    loader = DataLoader(images, batch_size=per_process, sampler=sampler, drop_last=True, num_workers=workers,
                        collate_fn=collate_finetune, worker_init_fn=init_worker, persistent_workers=workers > 0)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=cfg.sgd_momentum, nesterov=cfg.nesterov,
                                weight_decay=weight_decay)
    model, optimizer, loader = accelerator.prepare(model, optimizer, loader)
    total, step, skipped = _steps(cfg, len(loader)), 0, set()
    log = TrainLog(accelerator, log_dir) if log_dir is not None else None
    if log is not None:
        log.start(run_name(log_dir), {**dataclasses.asdict(cfg), "lr": lr, "weight_decay": weight_decay, "seed": seed})
    model.train()
    with tqdm(total=total, desc=desc, disable=not is_local_main_process(), leave=False) as bar:
        while step < total:
            sampler.set_epoch(step // len(loader))
            images.set_epoch(step // len(loader))
            loader.set_epoch(step // len(loader))
            for batch in loader:
                warn_skipped(batch["skipped"], skipped)
                for group in optimizer.param_groups:
                    group["lr"] = cosine_lr(step, total, lr, cfg.warmup_steps)
                loss = _loss(model(batch["pixels"]), batch["target"], single)
                accelerator.backward(loss)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                step += 1
                bar.update(1)
                bar.set_postfix(loss=f"{float(loss.detach()):.3g}")
                if log is not None and (step % cfg.log_every == 0 or step == total):
                    log.write({"loss": float(loss.detach()), "lr": optimizer.param_groups[0]["lr"]}, step)
                if step >= total:
                    break
    if log is not None:
        log.finish()
    unwrapped = accelerator.unwrap_model(model)
    return Run(predict_and_score(unwrapped, test, cfg, single=single, accelerator=accelerator), unwrapped)


@torch.no_grad()
def predict_and_score(model: Classifier, test: datasets.Dataset, cfg: FinetuneConfig, *, single: bool,
                      accelerator: Accelerator) -> dict[str, float]:
    """The classifier's scores on ``test`` (each process a shard, gathered by index; unreadable
    images left out), as :func:`scene_ssl.probe.core.score` reports them."""
    images = FinetuneImages(test, cfg.image_size, train=False, single=single, largest=cfg.mode == "largest",
                            interpolation=cfg.interpolation, test_resize=cfg.test_resize)
    per_process = max(1, cfg.batch_size // accelerator.num_processes)
    loader = accelerator.prepare(DataLoader(images, batch_size=per_process, num_workers=worker_count(cfg.num_workers),
                                            collate_fn=collate_finetune, worker_init_fn=init_worker))
    was_training = model.training
    model.eval()
    index, scores, targets, skipped = [], [], [], set()
    for batch in loader:
        warn_skipped(batch["skipped"], skipped)
        n = len(batch["index"])
        logits = model(batch["pixels"]).float() if n else torch.zeros(0, images.num_classes, device=accelerator.device)
        target = batch["target"].to(accelerator.device).reshape(n, *(() if single else (images.num_classes,)))
        i, s, t = gather_indexed(accelerator, per_process, batch["index"].to(accelerator.device), logits, target.float())
        index.append(i.cpu()), scores.append(s.cpu()), targets.append(t.cpu())
    model.train(was_training)
    _, scores, targets = unique_by_index(torch.cat(index), torch.cat(scores), torch.cat(targets))
    if single:
        targets = F.one_hot(targets.long(), images.num_classes).float()
    metrics = score(scores, targets, single)
    return {k: v for k, v in metrics.items() if isinstance(v, float)}


def chosen_metric(cfg: FinetuneConfig, single: bool) -> str:
    """What the grid picks by and a table leads with."""
    return cfg.metric if cfg.metric != "auto" else ("top1" if single else "mAP")


def metric_names(single: bool) -> tuple[str, ...]:
    return ("top1", "top5", "mean_per_class") if single else ("mAP", "CP", "CR", "CF1", "OP", "OR", "OF1")

