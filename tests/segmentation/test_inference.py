"""Sliding-window inference: mmseg's windows, and the same logits as the whole image away from window borders."""
import torch
from torch import nn

from scene_ssl.segmentation.inference import image_logits, slide_logits, slide_windows


def test_windows_cover_the_image_and_end_at_its_edges():
    windows = slide_windows(1024, 2048, (769, 769), (513, 513))
    assert len(windows) == 8
    assert {w[2] for w in windows} == {769, 1024} and {w[3] for w in windows} == {769, 1282, 1795, 2048}
    assert all(b - t == 769 and r - l == 769 for t, l, b, r in windows)
    assert slide_windows(300, 400, (512, 512), (341, 341)) == [(0, 0, 300, 400)]  # smaller than a crop: the whole image


def test_sliding_equals_whole_image_inference_of_a_translation_equivariant_model_away_from_borders():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 4, 3, padding=1))  # 2-pixel reach
    image = torch.randn(2, 3, 50, 77)
    crop, stride = (24, 24), (16, 16)
    with torch.no_grad():
        whole, slid = model(image), slide_logits(model, image, 4, crop, stride)
    # a pixel's logits are exact where every window covering it has its own border (not the image's) > 2 px away
    covering_exact = torch.ones(50, 77, dtype=torch.bool)
    for top, left, bottom, right in slide_windows(50, 77, crop, stride):
        window = torch.zeros(50, 77, dtype=torch.bool)
        window[top:bottom, left:right] = True
        inside = torch.zeros(50, 77, dtype=torch.bool)
        inside[top + (2 if top else 0):bottom - (2 if bottom < 50 else 0),
               left + (2 if left else 0):right - (2 if right < 77 else 0)] = True
        covering_exact &= ~window | inside
    assert covering_exact.float().mean() > 0.3  # the test compares a real share of the image
    assert torch.allclose(slid[..., covering_exact], whole[..., covering_exact], atol=1e-5)
    assert not torch.allclose(slid, whole, atol=1e-3)  # near window borders the crops see zero padding


def test_logits_are_resized_to_the_label():
    model = nn.Conv2d(3, 2, 1)
    out = image_logits(model, torch.randn(1, 3, 20, 30), 2, (40, 60), mode="whole")
    assert out.shape == (1, 2, 40, 60)
