"""What runs differently on a GPU, against the CPU: the device renderer (roi_align's CUDA
kernel), batched JPEG decode (nvjpeg), SyncBatchNorm, the export of a model that sits on the
GPU, and every method through the real recipe in bf16 with its probe and export."""
import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import timm
import torch
from PIL import Image

from scene_ssl.models import TimmBackbone, method_names
from scene_ssl.transforms import ViewPipeline
from scene_ssl.transforms.pipeline import ViewParams
from scene_ssl.transforms.device_render import render_views_torch

ROOT = Path(__file__).resolve().parents[2]
# SCENE_SSL_PARITY_DEVICE=cpu runs them on the CPU, to check the tests themselves without a GPU
CUDA = torch.device(os.environ.get("SCENE_SSL_PARITY_DEVICE", "cuda"))
pytestmark = pytest.mark.skipif(CUDA.type == "cuda" and not torch.cuda.is_available(),
                                reason="a CUDA parity test (device_check.py runs them)")


def _photo(h: int, w: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([xx * 255 / w, yy * 255 / h, 128 + 60 * np.sin(xx / 3.0)], -1)
    return (base + rng.normal(0, 8, (h, w, 3))).clip(0, 255).astype(np.uint8)


@pytest.mark.parametrize("side", [600, 1500, 3000])
def test_the_device_renderer_on_cuda_equals_it_on_the_cpu(side):
    # large images: crop corners above 1024 / 2048 px are where half precision rounded them
    image = torch.from_numpy(_photo(side * 3 // 4, side, 0))
    pipes = [ViewPipeline(size=64, scale=(0.05, 0.3))] * 64
    params = pipes[0].sample(torch.tensor([[0.0, 0.0, side, side * 3 // 4]]).repeat(64, 1), torch.Generator().manual_seed(1))
    index = torch.zeros(64, dtype=torch.long)
    cpu = render_views_torch(image[None], index, params, pipes)
    on_gpu = ViewParams(**{f.name: getattr(params, f.name).to(CUDA) for f in dataclasses.fields(params)})
    gpu = render_views_torch(image[None].to(CUDA), index.to(CUDA), on_gpu, pipes).cpu()
    assert (cpu - gpu).abs().max() < 2e-3  # float32 on both: the same crops, kernels' rounding only


def test_gpu_jpeg_decode_equals_pil(tmp_path):
    from scene_ssl.data import ViewDataset, collate_encoded, load_dataset
    from scene_ssl.data.device_decode import decode_batch
    from scene_ssl.transforms import MoCoV2Transform

    for i in range(4):
        Image.fromarray(_photo(300 + 8 * i, 400, i)).save(tmp_path / f"{i}.jpg", quality=95)
    data = load_dataset(f"folder:{tmp_path}")
    items = ViewDataset(data, MoCoV2Transform(size=32), render="device")
    batch = decode_batch(collate_encoded([items[i] for i in range(4)]), CUDA)
    for i in range(4):
        pil = np.asarray(Image.open(tmp_path / f"{int(batch['index'][i])}.jpg").convert("RGB"))
        h, w = pil.shape[:2]
        ours = batch["images"][i, :h, :w].cpu().numpy().astype(float)
        assert np.abs(ours - pil).mean() < 1.5  # nvjpeg vs libjpeg-turbo: IDCT rounding


def test_a_one_process_syncbn_step_equals_batchnorm():
    import torch.distributed as dist

    from ..launching import free_port

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(free_port()))
    dist.init_process_group("nccl" if CUDA.type == "cuda" else "gloo", rank=0, world_size=1)
    try:
        torch.manual_seed(0)
        plain = TimmBackbone("resnet18").to(CUDA).train()
        synced = timm.layers.convert_sync_batchnorm(TimmBackbone("resnet18")).to(CUDA).train()
        synced.load_state_dict(plain.state_dict())
        x = torch.randn(8, 3, 64, 64, device=CUDA)
        a, b = plain(x), synced(x)
        a.sum().backward()
        b.sum().backward()
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
        for (name, p), q in zip(plain.named_parameters(), synced.parameters()):
            torch.testing.assert_close(p.grad, q.grad, rtol=1e-3, atol=1e-4, msg=name)
    finally:
        dist.destroy_process_group()


def test_the_export_of_a_model_on_the_gpu(tmp_path):
    from scene_ssl.export import save_pretrained

    backbone = TimmBackbone("resnet18").to(CUDA).to(memory_format=torch.channels_last)
    folder = save_pretrained(backbone, tmp_path / "export", tag="t", train_config={"image_size": 96})
    loaded = timm.create_model(f"local-dir:{folder}", pretrained=True)
    assert all(torch.equal(v.cpu(), loaded.state_dict()[k]) for k, v in backbone.model.state_dict().items())
    assert tuple(loaded.pretrained_cfg["pool_size"]) == (3, 3)


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    from scene_ssl.data import make_scenes

    return make_scenes(tmp_path_factory.mktemp("cuda") / "s", num_classes=4, num_train=256, num_val=64, image_size=(96, 72))


@pytest.mark.parametrize("method", method_names())
def test_twenty_bf16_steps_of_every_method_through_the_recipe_with_probe_and_export(method, scenes, tmp_path):
    out = tmp_path / "out"
    cmd = [sys.executable, str(ROOT / "recipes" / "pretrain.py"), "--method", method, "--data", f"coco:{scenes}",
           "--backbone", "resnet18", "--image-size", "64", "--batch-size", "32", "--max-steps", "20",
           "--mixed-precision", "bf16", "--num-workers", "4", "--render", "process", "--log-every", "5",
           "--probe-data", f"coco:{scenes}", "--probe-epochs", "5", "--probe-image-size", "64", "--output-dir", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=tmp_path,
                          env={**os.environ, "PYTHONPATH": str(ROOT), "SCENE_SSL_CACHE": str(tmp_path / "cache")})
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert "cuda" in proc.stdout and "mixed precision bf16" in proc.stdout
    assert set(json.loads((out / "probe.json").read_text())) == {"pretrained", "random init"}
    model = timm.create_model(f"local-dir:{out / 'export'}", pretrained=True)
    assert model.num_features == 512
