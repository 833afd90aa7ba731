import colorsys
import math

import numpy as np
import pytest
import torch
import torchvision.transforms.functional as TF
from PIL import Image

from scene_ssl.transforms import ViewPipeline, jitter_affine, render_views_pil
from scene_ssl.transforms.color import rgb_hue_shift_hsv

W = torch.tensor([0.299, 0.587, 0.114], dtype=torch.float64)
YIQ = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]], dtype=torch.float64)


def naive_jitter(img, factors, order, jitter, gray):
    """Op by op on an (H, W, 3) float image, without clipping; the mean recomputed from pixels."""
    x = img.clone()
    if jitter:
        for op in order:
            f = float(factors[op])
            g = x @ W  # (H, W) gray
            if op == 0:
                x = x * f
            elif op == 1:
                x = f * x + (1 - f) * g.mean()
            elif op == 2:
                x = f * x + (1 - f) * g[..., None]
            else:
                yiq = x @ YIQ.t()
                th = -2 * math.pi * f
                i, q = yiq[..., 1].clone(), yiq[..., 2].clone()
                yiq[..., 1], yiq[..., 2] = math.cos(th) * i - math.sin(th) * q, math.sin(th) * i + math.cos(th) * q
                x = yiq @ torch.linalg.inv(YIQ).t()
    if gray:
        x = (x @ W)[..., None].expand_as(x)
    return x


def _params(n, seed=0, **overrides):
    p = ViewPipeline().sample(torch.tensor([[0.0, 0.0, 16.0, 16.0]]).repeat(n, 1), torch.Generator().manual_seed(seed))
    for k, v in overrides.items():
        setattr(p, k, v)
    return p


def test_composed_matrix_equals_naive_sequential_ops():
    n = 64
    params = _params(n, gray=torch.rand(n) < 0.5)
    imgs = torch.rand(n, 5, 7, 3, dtype=torch.float64) * 255
    A, t = jitter_affine(params, imgs.mean(dim=(1, 2)))
    for i in range(n):
        expected = naive_jitter(imgs[i], params.factors[i], params.order[i].tolist(), bool(params.jitter[i]), bool(params.gray[i]))
        got = imgs[i] @ A[i].t() + t[i]
        assert torch.allclose(got, expected, atol=1e-8), i


@pytest.mark.parametrize("h", [-0.1, -0.05, 0.05, 0.1])
def test_yiq_hue_rotates_hsv_hue_by_the_sampled_amount(h):
    # YIQ rotation and HSV's hexagonal hue are different colour models (per pixel they
    # differ), but both turn the colour wheel: on average the HSV hue moves by h.
    torch.manual_seed(0)
    x = 0.25 + 0.5 * torch.rand(3000, 3, dtype=torch.float64)  # mid-range: nothing clips
    p = _params(1, jitter=torch.tensor([True]), gray=torch.tensor([False]), order=torch.tensor([[3, 0, 1, 2]]),
                factors=torch.tensor([[1.0, 1.0, 1.0, h]], dtype=torch.float64))
    A, t = jitter_affine(p, torch.zeros(1, 3, dtype=torch.float64))
    y = x @ A[0].t() + t[0]
    hue = lambda px: colorsys.rgb_to_hsv(*px)[0]
    change = torch.tensor([(hue(b) - hue(a) + 0.5) % 1 - 0.5 for a, b in zip(x.tolist(), y.tolist())])
    assert change.mean().item() == pytest.approx(h, rel=0.1)
    # luma (Y) is preserved exactly
    assert torch.allclose(y @ W, x @ W, atol=1e-12)


def test_hsv_hue_shift_matches_colorsys():
    x = torch.rand(4, 3, 6, 5, dtype=torch.float64)
    shift = torch.tensor([0.1, -0.07, 0.0, 0.33], dtype=torch.float64)
    out = rgb_hue_shift_hsv(x, shift)
    for n in range(4):
        for i in range(6):
            for j in range(5):
                h, s, v = colorsys.rgb_to_hsv(*x[n, :, i, j].tolist())
                assert out[n, :, i, j].tolist() == pytest.approx(colorsys.hsv_to_rgb((h + float(shift[n])) % 1, s, v), abs=1e-9)


def _image(seed=0, size=(40, 30)):
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))


def test_pil_render_applies_the_matrix():
    img = _image()
    n = 16
    p = _params(n, seed=1, blur=torch.zeros(n, dtype=torch.bool), solarize=torch.zeros(n, dtype=torch.bool),
                flip=torch.zeros(n, dtype=torch.bool), crop=torch.tensor([[0.0, 0.0, 40.0, 30.0]], dtype=torch.float64).repeat(n, 1))
    pipe = ViewPipeline(size=20)
    out = render_views_pil(img, p, [pipe] * n).double()  # (N, S, S, 3)
    base = torch.from_numpy(np.array(img.resize((20, 20), Image.Resampling.BILINEAR, box=(0, 0, 40, 30)))).double()
    for i in range(n):
        if not (p.jitter[i] or p.gray[i]):
            assert torch.equal(out[i], base)
            continue
        mean = torch.from_numpy(np.asarray(Image.fromarray(base.byte().numpy()).reduce(4), dtype=np.float64).mean(axis=(0, 1)))
        A, t = jitter_affine(p.row(i), mean[None])
        expected = (base @ A[0].t() + t[0]).clamp(0, 255)
        assert (out[i] - expected).abs().max() <= 1.0


def test_solarize_and_flip():
    img = _image(2)
    pipe = ViewPipeline(size=16, solarize_threshold=128)
    p = _params(2, jitter=torch.zeros(2, dtype=torch.bool), gray=torch.zeros(2, dtype=torch.bool), blur=torch.zeros(2, dtype=torch.bool),
                solarize=torch.tensor([True, False]), flip=torch.tensor([False, True]),
                crop=torch.tensor([[0.0, 0.0, 40.0, 30.0]], dtype=torch.float64).repeat(2, 1))
    out = render_views_pil(img, p, [pipe] * 2).int()
    base = torch.from_numpy(np.array(img.resize((16, 16), Image.Resampling.BILINEAR, box=(0, 0, 40, 30)))).int()
    assert torch.equal(out[0], torch.where(base >= 128, 255 - base, base))
    assert torch.equal(out[1], base.flip(1))


def test_hsv_mode_matches_torchvision_color_jitter():
    img = _image(3, (24, 24))
    pipe = ViewPipeline(size=24, hue_mode="hsv")
    n = 12
    p = _params(n, seed=5, jitter=torch.ones(n, dtype=torch.bool), gray=torch.zeros(n, dtype=torch.bool),
                blur=torch.zeros(n, dtype=torch.bool), solarize=torch.zeros(n, dtype=torch.bool), flip=torch.zeros(n, dtype=torch.bool),
                crop=torch.tensor([[0.0, 0.0, 24.0, 24.0]], dtype=torch.float64).repeat(n, 1))
    out = render_views_pil(img, p, [pipe] * n).int()
    ops = [TF.adjust_brightness, TF.adjust_contrast, TF.adjust_saturation, TF.adjust_hue]
    for i in range(n):
        ref = img.resize((24, 24), Image.Resampling.BILINEAR, box=(0, 0, 24, 24))
        for op in p.order[i].tolist():
            ref = ops[op](ref, float(p.factors[i, op]))
        assert torch.equal(out[i], torch.from_numpy(np.array(ref)).int()), i
