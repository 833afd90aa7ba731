import numpy as np
import pytest
import torch
from PIL import Image

from scene_ssl.data import ViewDataset, collate_decoded, collate_encoded, load_dataset
from scene_ssl.data.device_decode import decode_batch
from scene_ssl.transforms import BlockwiseTransform, DeviceViewRenderer, MoCoV2Transform, bam_view_transforms


def _photo(h, w, seed):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([xx * 255 / w, yy * 255 / h, 128 + 60 * np.sin(xx / 7.0)], -1)
    return (base + rng.normal(0, 8, (h, w, 3))).clip(0, 255).astype(np.uint8)


@pytest.fixture
def jpegs(tmp_path):
    for i in range(6):
        Image.fromarray(_photo(60 + 4 * i, 80, i)).save(tmp_path / f"{i}.jpg", quality=95)
    return load_dataset(f"folder:{tmp_path}")


@pytest.mark.parametrize("transform", [MoCoV2Transform(size=24), BlockwiseTransform(*bam_view_transforms(24))])
def test_bytes_path_renders_the_views_of_the_decode_in_worker_path(jpegs, transform):
    worker = ViewDataset(jpegs, transform, seed=3, render="process")
    bytes_ = ViewDataset(jpegs, transform, seed=3, render="device")
    renderer = DeviceViewRenderer(transform.pipelines, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    a = collate_decoded([worker[i] for i in range(6)])
    b = decode_batch(collate_encoded([bytes_[i] for i in range(6)]), "cpu")
    assert b["images"].dtype == torch.uint8 and b["images"].shape[0] == 6 and b["images"].shape[-1] == 3
    assert torch.equal(a["index"], b["index"]) and b["skipped"] == []
    for key in a["params"]:  # the same draws (the worker path may decode smaller and scale its crops)
        if key != "crop":
            assert torch.allclose(a["params"][key].float(), b["params"][key].float()), key
    # libjpeg-turbo through torchvision vs PIL, full size vs DCT-reduced: the same views but for resampling
    for va, vb in zip(renderer(a), renderer(b)):
        assert va.shape == vb.shape and (va - vb).abs().mean() < 0.05


def test_mixed_png_gray_cmyk_and_corrupt_files_are_decoded_or_skipped_and_counted(tmp_path):
    Image.fromarray(_photo(120, 160, 0)).save(tmp_path / "a.jpg", quality=95)
    Image.fromarray(_photo(40, 50, 1)).save(tmp_path / "b.png")  # not a JPEG: decoded in the worker
    Image.fromarray(_photo(40, 50, 2)[..., 0]).save(tmp_path / "c_gray.jpg")  # one channel -> RGB
    Image.fromarray(_photo(40, 50, 3)).convert("CMYK").save(tmp_path / "d_cmyk.jpg")  # decoded in the worker
    full = (tmp_path / "a.jpg").read_bytes()
    (tmp_path / "e_truncated.jpg").write_bytes(full[: len(full) * 2 // 3])  # the header is fine, the data is not
    (tmp_path / "f_noise.jpg").write_bytes(b"\x00" * 300)  # not an image at all
    data = load_dataset(f"folder:{tmp_path}")
    ds = ViewDataset(data, MoCoV2Transform(size=16), render="device")
    items = [ds[i] for i in range(len(ds))]
    names = [it["name"].rsplit("/", 1)[-1] for it in items]
    assert "f_noise.jpg" not in names and any("f_noise.jpg" in n for it in items for n in it["skipped"])
    kinds = {n: ("bytes" if it["encoded"] is not None else "worker") for n, it in zip(names, items)}
    assert kinds["a.jpg"] == kinds["c_gray.jpg"] == kinds["e_truncated.jpg"] == "bytes"
    assert kinds["b.png"] == kinds["d_cmyk.jpg"] == "worker"
    batch = decode_batch(collate_encoded(items), "cpu")
    assert batch["images"].shape[0] == len(items) and batch["images"].shape[-1] == 3
    assert [n.rsplit("/", 1)[-1] for n in batch["skipped"] if "truncated" in n] == ["e_truncated.jpg"]


def test_a_training_step_decodes_on_the_device(jpegs, tmp_path, monkeypatch):
    import math

    from accelerate import Accelerator
    from accelerate.state import AcceleratorState, GradientState

    from scene_ssl.config import load_config
    from scene_ssl.models import MLSConfig
    from scene_ssl.train import pretrain

    monkeypatch.setenv("SCENE_SSL_CACHE", str(tmp_path / "cache"))
    folder = str(jpegs.cast_column("image", __import__("datasets").Image(decode=False))[0]["image"]["path"]).rsplit("/", 1)[0]
    cfg = load_config(MLSConfig, None, dict(data=f"folder:{folder}", backbone="test_resnet", image_size=16, batch_size=3,
                                            num_workers=0, max_steps=2, render="device", queue_size=16,
                                            dim=8, hidden_dim=16, topk=2, output_dir=str(tmp_path / "out"), export=False,
                                            log_every=1, mls_weight=0))
    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()
    out = pretrain(cfg, accelerator=Accelerator(cpu=True))
    assert out.step == 2 and math.isfinite(out.losses["loss"])
    assert load_config(MLSConfig, None, dict(decode_on="gpu")).render == "device"  # the old flag alone, as --render device
