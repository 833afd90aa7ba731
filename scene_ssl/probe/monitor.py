"""Watch a backbone learn: multi-label kNN mAP on a labeled set, cheap enough to run every few epochs."""
from __future__ import annotations

from torch import nn

from ..data import check_spec, load_dataset
from ..data.sources import default_splits
from .core import HeadOptions, knn_probe, score

__all__ = ["KNNMonitor"]


class KNNMonitor:
    """``monitor(backbone) -> {"knn_mAP": ...}``: the kNN probe (k nearest training images,
    cosine, similarity-weighted label vote) of the backbone as it is now, on up to
    ``max_train`` training and ``max_val`` validation images of ``data``.

    The pretraining loop calls it before the first step (the random-init reference) and every
    ``monitor_every`` epochs (frozen features, BN in eval mode), at the probes' image size, so
    that a user sees whether longer training still helps. The data is
    loaded at the first call; a bad spec fails at construction.

    Example:
        >>> KNNMonitor("imagenet", image_size=32)
        Traceback (most recent call last):
        ...
        ValueError: unknown dataset spec 'imagenet'; expected one of: scenes, coco:<path>, ...
    """

    def __init__(self, data: str, *, image_size: int, pool: str = "avg", k: int = 20, max_train: int = 2000,
                 max_val: int = 1000, num_workers: int = 0) -> None:
        self.data = check_spec(data)
        self.image_size, self.pool, self.k = image_size, pool, k
        self.max_train, self.max_val, self.num_workers = max_train, max_val, num_workers
        self._splits = None

    @classmethod
    def from_config(cls, cfg) -> "KNNMonitor | None":
        """The monitor a pretraining config asks for (``monitor_every`` > 0 and ``probe_data`` set), else None."""
        if not cfg.monitor_every or not cfg.probe_data:
            return None
        return cls(cfg.probe_data, image_size=cfg.probe_image_size, num_workers=cfg.probe_workers())

    def _load(self):
        if self._splits is None:
            train_split, val_split = default_splits(self.data)
            train = load_dataset(self.data, train_split, drop_unlabeled=True)
            val = load_dataset(self.data, val_split, drop_unlabeled=True)
            self._splits = (train.select(range(min(len(train), self.max_train))),
                            val.select(range(min(len(val), self.max_val))))
        return self._splits

    def __call__(self, backbone: nn.Module, accelerator=None) -> dict[str, float]:
        """The kNN mAP of ``backbone`` now; with an ``accelerator``, every process extracts a
        share of the features and all return the same number."""
        train, val = self._load()
        opts = HeadOptions(image_size=self.image_size, pool=self.pool, k=self.k, num_workers=self.num_workers)
        scores, targets = knn_probe(backbone, train, val, opts, accelerator=accelerator)
        return {"knn_mAP": score(scores, targets, single_label=False, threshold=0.5, apply_sigmoid=False)["mAP"]}
