"""Feature extraction shared by two processes gives every process the one-process features, row
for row, even when an unreadable image shrinks one process's batch."""
import os

import numpy as np
import torch
from PIL import Image

from scene_ssl.data import load_dataset
from scene_ssl.models import TimmBackbone
from scene_ssl.probe import extract_features

from ..distributed_helpers import run_distributed


def _folder(root):
    for label in ("a", "b"):
        (root / label).mkdir(parents=True)
        for i in range(7):
            Image.fromarray(np.random.default_rng(i + (label == "b") * 10).integers(0, 255, (24, 32, 3), np.uint8)) \
                .save(root / label / f"{i}.jpg")
    (root / "a" / "3.jpg").write_bytes(b"\xff\xd8\xff not a jpeg")  # rank 1's first batch loses one row
    return root


def _shared(rank, world_size, root):
    from accelerate import Accelerator

    os.environ["ACCELERATE_USE_CPU"] = "1"
    accelerator = Accelerator(cpu=True)
    assert accelerator.num_processes == 2
    torch.manual_seed(0)
    backbone = TimmBackbone("test_resnet")
    data = load_dataset(f"folder:{root}")
    expected = extract_features(backbone, data, image_size=32, batch_size=4, num_workers=0)  # this process alone
    assert expected[0].shape[0] == 13  # 14 files, one unreadable
    feats, targets = extract_features(backbone, data, image_size=32, batch_size=4, num_workers=0, accelerator=accelerator)
    # main 8d5e37d: gather_for_metrics of unequal batches (an error, or rows paired with the wrong targets)
    torch.testing.assert_close(feats, expected[0], rtol=1e-4, atol=1e-5)
    assert torch.equal(targets, expected[1])


def test_two_processes_extract_the_one_process_features_row_for_row(tmp_path):
    # spawned: the tests before this one computed with OpenMP threads, which a fork leaves hung
    run_distributed(_shared, _folder(tmp_path / "imgs"), start_method="spawn")
