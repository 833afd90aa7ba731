"""FinetuneConfig: fine-tuning a whole pretrained backbone on a classification set."""
from __future__ import annotations

import dataclasses

from ..config import default_of, option
from ..models import MLSConfig
from ..data.sources import default_splits
from ..trackers import REPORT_TO_HELP, check_report_to
from ..data.workers import DEFAULT_WORKERS, THREADS_HELP, WORKERS_HELP, check_threads
from ..models.config import MIXED_PRECISION

__all__ = ["FinetuneConfig", "MODES", "METRICS"]

MODES = ("auto", "singlelabel", "multilabel", "largest")
METRICS = ("auto", "top1", "mean_per_class", "mAP")


@dataclasses.dataclass
class FinetuneConfig:
    """Defaults: Ericsson et al. (CVPR 2021, linusericsson/ssl-transfer ``finetune.py``)."""

    model: str = option(default_of(MLSConfig, "output_dir"), "training output | export folder | local-dir:... | hf-hub:org/name | random:<timm name>")
    data: str = option("scenes", "labeled data: torchvision:<Name>:/root | cub:/path | indoor67:/path | voc:/VOCdevkit?years=2007 | scenes | coco:/path | folder:/path")
    train_split: str | None = option(None, "split trained on (default: the data's own: train, Pets' trainval, VOC's trainval)")
    val_split: str | None = option(None, "split the grid search is scored on (none: a seeded val_fraction of the training split)")
    test_split: str | None = option(None, "split the final result is measured on (default: the data's own evaluation split)")
    val_fraction: float = option(0.2, "the share of the training split held out as val when the data has no val split")
    mode: str = option("auto", "auto | singlelabel | multilabel | largest (single label: each image's largest object)")
    metric: str = option("auto", "what the grid picks by and the table leads with: auto (mAP multi-label, else top1) | top1 | mean_per_class | mAP")
    image_size: int = option(224, "training crop and test side, px")
    interpolation: str = option("bicubic", "resampling of the crops and the test resize: bicubic | bilinear")
    test_resize: str = option("crop", "test images: crop (shorter side to image_size, centre crop) | squash (the whole image)")
    steps: int | None = option(5000, "optimiser steps (none: --epochs)")
    epochs: int | None = option(None, "epochs over the training split (when steps is none)")
    batch_size: int = option(64, "images per step over all processes")
    lr: float = option(0.01, "SGD learning rate (cosine to 0; the grid's best with --grid)")
    weight_decay: float = option(0.0, "SGD weight decay (the grid's best with --grid)")
    sgd_momentum: float = option(0.9, "SGD momentum")
    nesterov: bool = option(True, "Nesterov momentum")
    warmup_steps: int = option(0, "linear warm-up steps")
    grid: bool = option(False, "search lr x weight decay on val, retrain on train + val with the best, score on test")
    grid_lrs: tuple[float, ...] = option((0.1, 0.01, 0.001, 0.0001), "the grid's learning rates")
    grid_wds: tuple[float, ...] = option((0.0, 1e-6, 1e-5, 1e-4, 1e-3), "the grid's weight decays, each divided by the lr")
    compare_random: bool = option(True, "also fine-tune random:<same architecture> with the same settings")
    seed: int = option(0, "seed of the head, the crops and the batches")
    seeds: tuple[int, ...] | None = option(None, "run once per seed (a finished seed is not rerun) and report mean ± std (n)")
    mixed_precision: str | None = option(None, "no | bf16 | fp16; none: the accelerate launch config")
    report_to: str = option("auto", REPORT_TO_HELP)
    log_every: int = option(50, "steps between train_log.jsonl lines of each final run (its folder; the grid's cells log nothing)")
    num_workers: int = option(DEFAULT_WORKERS, WORKERS_HELP)
    threads: int | None = option(None, THREADS_HELP)
    output_dir: str = option("outputs/finetune", "where metrics.json and each run's folder go")

    def check(self) -> None:
        """Refuse values that cannot train; fill the splits from the data source."""
        check_report_to(self.report_to)
        if self.log_every < 1:
            raise ValueError(f"log_every must be >= 1, got {self.log_every}")
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        if self.metric not in METRICS:
            raise ValueError(f"metric must be one of {METRICS}, got {self.metric!r}")
        if self.interpolation not in ("bicubic", "bilinear"):
            raise ValueError(f"interpolation must be bicubic or bilinear, got {self.interpolation!r}")
        if self.test_resize not in ("crop", "squash"):
            raise ValueError(f"test_resize must be crop or squash, got {self.test_resize!r}")
        if (self.steps is None) == (self.epochs is None):
            raise ValueError("give one of steps and epochs (the other none)")
        for name in ("steps", "epochs"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("batch_size", "image_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0 < self.val_fraction < 1:
            raise ValueError(f"val_fraction must be in (0, 1), got {self.val_fraction}")
        if self.lr <= 0 or self.weight_decay < 0:
            raise ValueError(f"lr must be > 0 and weight_decay >= 0, got {self.lr} and {self.weight_decay}")
        if self.mixed_precision not in MIXED_PRECISION:
            raise ValueError(f"mixed_precision must be one of {MIXED_PRECISION[1:]}, got {self.mixed_precision!r}")
        check_threads(self.threads)
        self.train_split, self.test_split = default_splits(self.data, self.train_split, self.test_split)
