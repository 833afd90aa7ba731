import math

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.transforms import RandomResizedCrop

from scene_ssl.transforms import BlockwiseTransform, bam_view_transforms, block_boxes, sample_resized_crops


@pytest.mark.parametrize("W,H", [(640, 480), (333, 500), (100, 50), (81, 61)])
@pytest.mark.parametrize("c", [0.0, 0.2, 0.3, 0.49])
def test_block_boxes_match_the_formulas(W, H, c):
    b1, b2, b3, b4 = block_boxes(W, H, overlap=c)
    assert b1 == pytest.approx((0, 0, W // 2 + c * W, H // 2 + c * H))
    assert b2 == pytest.approx((0, H // 2 - c * H, W // 2 + c * W, H))
    assert b3 == pytest.approx((W // 2 - c * W, 0, W, H // 2 + c * H))
    assert b4 == pytest.approx((W // 2 - c * W, H // 2 - c * H, W, H))
    for x0, y0, x1, y1 in (b1, b2, b3, b4):  # each block is (0.5 + c) of each side, within half a pixel
        assert abs(x1 - x0 - (0.5 + c) * W) <= 0.5 + 1e-9 and abs(y1 - y0 - (0.5 + c) * H) <= 0.5 + 1e-9


def _authors_blocks(image: Image.Image, cross: float) -> list[Image.Image]:
    """The BAM authors' CropTransform, written out as in their loader: PIL's size is
    (W, H) but they name it ``h, w``, halve with ``//`` and let ``crop`` round the floats."""
    h, w = image.size
    ch, cw = cross * h, cross * w
    return [image.crop((0, 0, h // 2 + ch, w // 2 + cw)), image.crop((0, w // 2 - cw, h // 2 + ch, w)),
            image.crop((h // 2 - ch, 0, h, w // 2 + cw)), image.crop((h // 2 - ch, w // 2 - cw, h, w))]


@pytest.mark.parametrize("W,H", [(81, 61), (97, 75), (640, 479), (333, 500)])
@pytest.mark.parametrize("c", [0.2, 0.3])
def test_blocks_cut_the_same_pixels_as_the_authors_loader(W, H, c):
    image = Image.fromarray(np.random.default_rng(W * H).integers(0, 256, (H, W, 3), dtype=np.uint8))
    regions = BlockwiseTransform(*bam_view_transforms(32), overlap=c).regions(W, H)[:4]
    for ours, theirs in zip(regions, _authors_blocks(image, c)):
        assert np.array_equal(np.asarray(image.crop(tuple(int(v) for v in ours))), np.asarray(theirs))


@pytest.mark.parametrize("bad", [-0.1, 0.5, 0.7, "a", None])
def test_overlap_out_of_range_is_refused(bad):
    with pytest.raises(ValueError, match="overlap"):
        block_boxes(100, 100, overlap=bad)


def test_crops_stay_inside_and_honour_scale_and_ratio():
    g = torch.Generator().manual_seed(0)
    regions = torch.tensor([[10.0, 20.0, 458.0, 356.0]]).repeat(5000, 1)  # 448 x 336 block
    crops = sample_resized_crops(regions, (0.2, 1.0), (3 / 4, 4 / 3), g)
    w, h = crops[:, 2] - crops[:, 0], crops[:, 3] - crops[:, 1]
    assert torch.all(crops[:, 0] >= 10) and torch.all(crops[:, 1] >= 20)
    assert torch.all(crops[:, 2] <= 458) and torch.all(crops[:, 3] <= 356)
    frac = w * h / (448 * 336)
    assert frac.min() >= 0.2 - 0.01 and frac.max() <= 1.0
    ratio = w / h
    assert ratio.min() >= 3 / 4 - 0.02 and ratio.max() <= 4 / 3 + 0.02
    assert torch.equal(crops, crops.round())  # whole-pixel offsets and sizes, like torchvision


def test_distribution_matches_torchvision_get_params():
    torch.manual_seed(0)
    H, W, n = 300, 420, 4000
    dummy = torch.empty(3, H, W)
    ref = torch.tensor([RandomResizedCrop.get_params(dummy, [0.2, 1.0], [3 / 4, 4 / 3]) for _ in range(n)], dtype=torch.float64)
    ref_area = ref[:, 2] * ref[:, 3] / (H * W)  # (top, left, h, w)
    ref_cx = (ref[:, 1] + ref[:, 3] / 2) / W
    ours = sample_resized_crops(torch.tensor([[0.0, 0.0, W, H]]).repeat(n, 1), (0.2, 1.0), (3 / 4, 4 / 3), torch.Generator().manual_seed(1))
    area = (ours[:, 2] - ours[:, 0]) * (ours[:, 3] - ours[:, 1]) / (H * W)
    cx = (ours[:, 0] + ours[:, 2]) / 2 / W
    for a, b in [(area, ref_area), (cx, ref_cx)]:
        assert a.mean().item() == pytest.approx(b.mean().item(), abs=0.015)
        assert a.std().item() == pytest.approx(b.std().item(), abs=0.015)


def test_fallback_is_the_central_crop():
    # a 1000 x 10 region: no 0.9-1.0 area crop with ratio in [3/4, 4/3] fits -> central crop, ratio clamped
    crops = sample_resized_crops(torch.tensor([[0.0, 0.0, 1000.0, 10.0]]), (0.9, 1.0), (3 / 4, 4 / 3))
    x0, y0, x1, y1 = crops[0].tolist()
    assert (y0, y1) == (0, 10) and x1 - x0 == round(10 * 4 / 3) and math.isclose((x0 + x1) / 2, 500, abs_tol=1)
