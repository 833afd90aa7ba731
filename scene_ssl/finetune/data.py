"""Images and targets for fine-tuning: Ericsson et al.'s augmentation, any label kind."""
from __future__ import annotations

from typing import Any

import datasets
import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from ..data.decode import decode_image
from ..data.sampler import SharedEpoch, seeded_generator
from ..data.views import first_readable
from ..transforms import ViewPipeline

__all__ = ["FinetuneImages", "collate_finetune", "single_label"]

_RESAMPLE = {"bicubic": Image.Resampling.BICUBIC, "bilinear": Image.Resampling.BILINEAR}


def single_label(data: datasets.Dataset, largest: bool) -> bool:
    """Whether the targets are one class per image: ``largest`` (each image's largest object,
    the ``largest`` column), or data whose every image has exactly one label."""
    if largest:
        if "largest" not in data.column_names:
            raise ValueError("mode largest needs each image's largest object: a COCO-format source (scenes, coco:)")
        return True
    return all(len(labels) == 1 for labels in data["labels"])


class FinetuneImages(SharedEpoch, Dataset):
    """``{"pixels": uint8 (S, S, 3), "target", "index"}`` per image.

    ``train=True``: RandomResizedCrop (scale 0.08-1, ratio 3/4-4/3) + horizontal flip, drawn
    from (seed, epoch, index); else the test view: the shorter side resized to S and the centre
    cut (``test_resize="crop"``) or the whole image squashed (``"squash"``). Targets: the class
    index (single label; ``largest``: the largest object's) or the multi-hot row, -1 where an
    ``ignore`` column says so (VOC's difficult-only labels). An unreadable image gives the next
    readable one in training (named in ``skipped``); in testing it is left out.
    """

    def __init__(self, data: datasets.Dataset, size: int, *, train: bool, single: bool, largest: bool = False,
                 seed: int = 0, interpolation: str = "bicubic", test_resize: str = "crop") -> None:
        self.rows = data.cast_column("image", datasets.Image(decode=False))
        self.size, self.train, self.single, self.largest, self.seed = size, train, single, largest, seed
        self.resample, self.test_resize = _RESAMPLE[interpolation], test_resize
        self.crop = ViewPipeline(size=size, scale=(0.08, 1.0), jitter_p=0.0, grayscale_p=0.0, blur_p=0.0, flip_p=0.5)
        self.num_classes = len(self.rows[0]["multi_hot"]) if len(data) else 0  # (not decoding image 0)
        SharedEpoch.__init__(self)  # the crops' epoch, seen by persistent workers

    def __len__(self) -> int:
        return len(self.rows)

    def _target(self, row: dict) -> torch.Tensor:
        if self.largest:
            return torch.tensor(row["largest"])
        if self.single:
            return torch.tensor(row["labels"][0])
        target = torch.tensor(row["multi_hot"], dtype=torch.float32)
        return target - torch.tensor(row["ignore"], dtype=torch.float32) if "ignore" in row else target

    def _pixels(self, image: Image.Image, index: int) -> torch.Tensor:
        s = self.size
        if self.train:
            params = self.crop.sample(torch.tensor([[0.0, 0.0, *image.size]]), seeded_generator(self.seed, self.epoch, index))
            x0, y0, x1, y1 = params.crop[0].tolist()
            image = image.resize((s, s), self.resample, box=(x0, y0, x1, y1))
            if bool(params.flip[0]):
                image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        elif self.test_resize == "squash":
            image = image.resize((s, s), self.resample)
        else:
            scale = s / min(image.size)
            w, h = max(s, round(image.width * scale)), max(s, round(image.height * scale))
            left, top = (w - s) // 2, (h - s) // 2
            image = image.resize((w, h), self.resample).crop((left, top, left + s, top + s))
        return torch.from_numpy(np.asarray(image, dtype=np.uint8).copy())

    def __getitem__(self, index: int) -> dict[str, Any]:
        j, image, skipped = first_readable(index, len(self), lambda j: decode_image(self.rows[j]["image"]),
                                           replace=self.train)
        if j is None:
            return {"skipped": skipped}
        return {"pixels": self._pixels(image, j), "target": self._target(self.rows[j]), "index": j, "skipped": skipped}


def collate_finetune(items: list[dict]) -> dict[str, Any]:
    good = [i for i in items if "pixels" in i]
    if not good:  # every image of a test batch unreadable
        return {"pixels": torch.zeros(0, 1, 1, 3, dtype=torch.uint8), "target": torch.zeros(0), "index": torch.zeros(0, dtype=torch.long),
                "skipped": [name for i in items for name in i["skipped"]]}
    return {"pixels": torch.stack([i["pixels"] for i in good]), "target": torch.stack([i["target"] for i in good]),
            "index": torch.tensor([i["index"] for i in good], dtype=torch.long),
            "skipped": [name for i in items for name in i["skipped"]]}
