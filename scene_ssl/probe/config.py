"""Config schemas of the probe recipes (same YAML / CLI rules as the pretraining ones)."""
from __future__ import annotations

import dataclasses

from ..config import default_of, option
from ..models import MLSConfig
from ..data.sources import default_splits
from ..data.workers import DEFAULT_WORKERS, THREADS_HELP, WORKERS_HELP, check_threads

__all__ = ["LinearProbeConfig", "KNNProbeConfig"]

_MODEL = "training output folder | export folder | local-dir:... | hf-hub:org/name | random:<timm name>"
_IMAGE_SIZE = "image side, px (default: the model's own input size, from its pretrained_cfg)"
_SPLITS = "(default: the data's own: train / val, VOC's trainval / test)"


def _with_splits(cfg) -> None:
    """Fill in the splits left unset with the data source's defaults."""
    cfg.train_split, cfg.val_split = default_splits(cfg.data, cfg.train_split, cfg.val_split)
    check_threads(cfg.threads)


@dataclasses.dataclass
class LinearProbeConfig:
    """The BAM authors' GAMP linear probe (defaults), on any checkpoint and dataset."""

    model: str = option(default_of(MLSConfig, "output_dir"), _MODEL)
    data: str = option("scenes", "labeled data: scenes | coco:/path | hf:<repo or folder> | voc:/VOCdevkit[?years=2007] | folder:/path (class subfolders)")
    train_split: str | None = option(None, f"split the head is trained on {_SPLITS}")
    val_split: str | None = option(None, f"split the metrics are measured on {_SPLITS}")
    mode: str = option("auto", "auto | multilabel | singlelabel")
    pool: str = option("avgmax", "pooling of the frozen feature map: avgmax (GAMP) | avg | max")
    image_size: int | None = option(None, _IMAGE_SIZE)
    epochs: int = option(100, "epochs of the linear head")
    batch_size: int = option(64, "images per batch")
    lr: float | None = option(None, "learning rate of the head (default: 10 x batch / 256, the authors' rule)")
    weight_decay: float = option(0.0, "weight decay of the head")
    threshold: float = option(0.5, "a label is predicted when sigmoid(logit) >= threshold")
    logit_threshold: float | None = option(None, "threshold raw logits instead (0.6: the authors' script, top-3 included)")
    cache_features: bool = option(True, "extract features once (eval transform); false: RRC + flip through the backbone every epoch")
    num_workers: int = option(DEFAULT_WORKERS, WORKERS_HELP)
    threads: int | None = option(None, THREADS_HELP)
    seed: int = option(0, "seed of the head and the batches")
    seeds: tuple[int, ...] | None = option(None, "run once per seed (e.g. 0,1,2; a finished seed is not rerun) and report "
                                                 "mean ± std (n)")
    output_dir: str = option("outputs/probe_linear", "where metrics.json and the feature cache go")

    def check(self) -> None:
        _with_splits(self)


@dataclasses.dataclass
class KNNProbeConfig:
    """k-nearest-neighbour classification on frozen, L2-normalised features."""

    model: str = option(default_of(MLSConfig, "output_dir"), _MODEL)
    data: str = option("scenes", "labeled data: scenes | coco:/path | hf:<repo or folder> | voc:/VOCdevkit[?years=2007] | folder:/path (class subfolders)")
    train_split: str | None = option(None, f"split the neighbours come from {_SPLITS}")
    val_split: str | None = option(None, f"split the metrics are measured on {_SPLITS}")
    mode: str = option("auto", "auto | multilabel | singlelabel")
    pool: str = option("avg", "pooling of the frozen feature map: avgmax | avg | max")
    image_size: int | None = option(None, _IMAGE_SIZE)
    k: int = option(20, "neighbours per query")
    temperature: float = option(0.07, "neighbour weight exp(cos / T)")
    batch_size: int = option(64, "images per batch of feature extraction")
    num_workers: int = option(DEFAULT_WORKERS, WORKERS_HELP)
    threads: int | None = option(None, THREADS_HELP)
    seed: int = option(0, "seed")
    output_dir: str = option("outputs/probe_knn", "where metrics.json and the feature cache go")

    def check(self) -> None:
        _with_splits(self)
