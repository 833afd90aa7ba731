import math

import numpy as np
import pytest
import torch
from PIL import Image

from scene_ssl.data import ViewDataset, collate_decoded, collate_views, load_dataset
from scene_ssl.transforms import BlockwiseTransform, DeviceViewRenderer, ViewNormalizer, ViewPipeline, bam_view_transforms
from scene_ssl.transforms.device_render import render_views_torch

W, H = 200, 150


def coordinate_image() -> torch.Tensor:
    """R encodes x, G encodes y: a rendered view tells which box it was cut from."""
    x = torch.linspace(0, 255, W).round()[None, :].expand(H, W)
    y = torch.linspace(0, 255, H).round()[:, None].expand(H, W)
    return torch.stack([x, y, torch.full((H, W), 128.0)], dim=-1).to(torch.uint8)


def render(pipeline: ViewPipeline, n: int, image: torch.Tensor, seed: int = 0):
    params = pipeline.sample(torch.tensor([[0.0, 0.0, image.shape[1], image.shape[0]]]).repeat(n, 1), torch.Generator().manual_seed(seed))
    out = render_views_torch(image[None], torch.zeros(n, dtype=torch.long), params, [pipeline] * n)
    return params, out


def _rate_ok(flags, p):
    return abs(flags.double().mean().item() - p) <= 5 * math.sqrt(p * (1 - p) / flags.numel()) + 1e-9


OFF = dict(jitter_p=0.0, grayscale_p=0.0, blur_p=0.0, solarize_p=0.0, flip_p=0.0)


def test_crops_are_the_sampled_boxes_and_honour_scale_and_ratio():
    pipe = ViewPipeline(size=16, scale=(0.2, 1.0), **OFF)
    params, out = render(pipe, 1000, coordinate_image())
    # the first/last column / row of a view sit half a pixel (of the view) inside the box
    x0 = out[:, 0, :, 0].mean(1) * (W - 1)
    x1 = out[:, 0, :, -1].mean(1) * (W - 1)
    y0 = out[:, 1, 0, :].mean(1) * (H - 1)
    y1 = out[:, 1, -1, :].mean(1) * (H - 1)
    bw, bh = params.crop[:, 2] - params.crop[:, 0], params.crop[:, 3] - params.crop[:, 1]
    assert torch.allclose(x0.double(), params.crop[:, 0] + bw / 32 - 0.5, atol=1.5)
    assert torch.allclose(x1.double(), params.crop[:, 2] - bw / 32 - 0.5, atol=1.5)
    assert torch.allclose(y0.double(), params.crop[:, 1] + bh / 32 - 0.5, atol=1.5)
    assert torch.allclose(y1.double(), params.crop[:, 3] - bh / 32 - 0.5, atol=1.5)
    area = (x1 - x0) * 16 / 15 * (y1 - y0) * 16 / 15 / (W * H)
    assert area.min() > 0.2 - 0.03 and area.max() < 1.0 + 0.03
    ratio = ((x1 - x0) / (y1 - y0))
    assert ratio.min() > 3 / 4 - 0.06 and ratio.max() < 4 / 3 + 0.06


def test_flip_rate():
    params, out = render(ViewPipeline(size=12, **{**OFF, "flip_p": 0.5}), 2000, coordinate_image())
    flipped = out[:, 0, :, 0].mean(1) > out[:, 0, :, -1].mean(1)  # R decreases left to right
    assert torch.equal(flipped, params.flip) and _rate_ok(flipped, 0.5)


def test_grayscale_rate():
    params, out = render(ViewPipeline(size=12, **{**OFF, "grayscale_p": 0.2}), 2000, coordinate_image())
    gray = ((out[:, 0] - out[:, 1]).abs().amax(dim=(1, 2)) < 1e-5) & ((out[:, 1] - out[:, 2]).abs().amax(dim=(1, 2)) < 1e-5)
    assert torch.equal(gray, params.gray) and _rate_ok(gray, 0.2)


def test_brightness_range_and_rate():
    image = torch.full((H, W, 3), 100, dtype=torch.uint8)
    params, out = render(ViewPipeline(size=8, jitter=(0.4, 0.0, 0.0, 0.0), **{**OFF, "jitter_p": 0.8}), 4000, image)
    factor = out.mean(dim=(1, 2, 3)) / (100 / 255)
    assert torch.allclose(factor[~params.jitter], torch.ones(()), atol=1e-5)
    f = factor[params.jitter]
    assert f.min() >= 0.6 - 1e-4 and f.max() <= 1.4 + 1e-4
    assert f.mean().item() == pytest.approx(1.0, abs=0.01) and f.var().item() == pytest.approx(0.8 ** 2 / 12, rel=0.08)
    assert _rate_ok(params.jitter, 0.8)


@pytest.mark.parametrize("hue_mode", ["yiq", "hsv"])
def test_hue_and_saturation_keep_gray_gray(hue_mode):
    image = torch.full((H, W, 3), 90, dtype=torch.uint8)
    params, out = render(ViewPipeline(size=8, jitter=(0.0, 0.0, 0.4, 0.1), hue_mode=hue_mode, **{**OFF, "jitter_p": 1.0}), 50, image)
    assert torch.allclose(out, torch.full_like(out, 90 / 255), atol=2e-3)


def test_solarize_threshold():
    ramp = torch.arange(256, dtype=torch.uint8)[None, :, None].expand(256, 256, 3).contiguous()
    pipe = ViewPipeline(size=256, scale=(1.0, 1.0), ratio=(1.0, 1.0), **{**OFF, "solarize_p": 1.0}, solarize_threshold=128)
    _, out = render(pipe, 1, ramp)
    values = (out[0, 0, 0] * 255).round()
    expected = torch.where(torch.arange(256.0) >= 128, 255 - torch.arange(256.0), torch.arange(256.0))
    assert torch.equal(values, expected)


def test_blur_smooths_and_keeps_the_mean():
    img = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8))
    pipe = ViewPipeline(size=64, scale=(1.0, 1.0), ratio=(1.0, 1.0), **{**OFF, "blur_p": 1.0}, blur_sigma=(1.5, 2.0))
    params, out = render(pipe, 2, img)
    sharp = img.permute(2, 0, 1).float() / 255
    assert out[0].std() < 0.5 * sharp.std()
    assert out[0].mean().item() == pytest.approx(sharp.mean().item(), abs=0.01)


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("imgs")
    rng = np.random.default_rng(0)
    for i in range(6):
        w, h = int(rng.integers(60, 100)), int(rng.integers(50, 90))
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).filter(__import__("PIL.ImageFilter").ImageFilter.GaussianBlur(2)).save(root / f"{i}.png")
    return root


def test_device_path_has_the_cpu_path_layout_and_pixels(tiny_folder):
    ds = load_dataset(f"folder:{tiny_folder}")
    t1, t2 = bam_view_transforms(24, blur_p=0.0)  # blur differs by design (PIL's box approximation)
    transform = BlockwiseTransform(t1, t2, overlap=0.2)
    cpu = collate_views([ViewDataset(ds, transform, seed=3)[i] for i in range(4)])
    dev = collate_decoded([ViewDataset(ds, transform, seed=3, render="process")[i] for i in range(4)])
    norm = ViewNormalizer((0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    cpu_views = [norm(v.permute(0, 3, 1, 2)) for v in cpu["views"].unbind(0)]
    dev_views = DeviceViewRenderer(transform.pipelines, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))(dev)
    assert len(cpu_views) == len(dev_views) == 8
    for c, d in zip(cpu_views, dev_views):
        assert c.shape == d.shape == (4, 3, 24, 24)
        assert d.is_contiguous(memory_format=torch.channels_last)
        # same crop, colour, solarize and flip per view: only resampling / rounding differ
        assert (c - d).abs().mean() < 0.06, (c - d).abs().mean()
    assert torch.equal(cpu["index"], dev["index"])


def test_training_step_with_render_process_runs_on_cpu(tiny_folder, tmp_path, monkeypatch):
    from accelerate import Accelerator

    from scene_ssl.config import load_config
    from scene_ssl.models import BAMConfig
    from scene_ssl.train import pretrain

    monkeypatch.setenv("SCENE_SSL_CACHE", str(tmp_path / "cache"))
    cfg = load_config(BAMConfig, None, dict(data=f"folder:{tiny_folder}", backbone="test_resnet", image_size=16, batch_size=3,
                                            num_workers=0, max_steps=2, proj_dim=16, proj_hidden_dim=16, pred_hidden_dim=8,
                                            render="process", output_dir=str(tmp_path), export=False, log_every=1))
    out = pretrain(cfg, accelerator=Accelerator(cpu=True))
    assert out.step == 2 and math.isfinite(out.losses["loss"])
