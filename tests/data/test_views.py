import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from scene_ssl.data import ViewDataset, collate_views, load_dataset
from scene_ssl.transforms import BlockwiseTransform, MoCoV2Transform, bam_view_transforms


@pytest.fixture
def messy_folder(tmp_path):
    """6 good JPEGs and 4 bad files: random bytes, a truncated JPEG, text, a vanished file."""
    rng = np.random.default_rng(0)
    for i in range(6):
        Image.fromarray(rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)).save(tmp_path / f"good{i}.jpg", quality=90)
    (tmp_path / "bad_random.jpg").write_bytes(rng.integers(0, 256, 500, dtype=np.uint8).tobytes())
    full = (tmp_path / "good0.jpg").read_bytes()
    (tmp_path / "bad_truncated.jpg").write_bytes(full[: len(full) // 2])
    (tmp_path / "bad_text.png").write_text("definitely not a PNG")
    (tmp_path / "bad_vanished.jpg").write_bytes(full)
    ds = load_dataset(f"folder:{tmp_path}")
    (tmp_path / "bad_vanished.jpg").unlink()  # listed, then deleted before it is read
    return ds


def test_bad_files_are_skipped_and_reported(messy_folder):
    data = ViewDataset(messy_folder, MoCoV2Transform(size=16))
    skipped, used = [], []
    for i in range(len(data)):
        item = data[i]
        assert item["views"].shape == (2, 16, 16, 3) and item["views"].dtype == torch.uint8
        skipped += item["skipped"]
        used.append(item["index"])
    names = sorted({s.rsplit("/", 1)[-1] for s in skipped})
    assert names == ["bad_random.jpg", "bad_text.png", "bad_truncated.jpg", "bad_vanished.jpg"]
    assert all(messy_folder[j]["image"] is not None for j in used)


def test_loader_with_workers_keeps_batches_full(messy_folder):
    t1, t2 = bam_view_transforms(24)
    data = ViewDataset(messy_folder, BlockwiseTransform(t1, t2))
    loader = DataLoader(data, batch_size=5, num_workers=2, collate_fn=collate_views, drop_last=False)
    batches = list(loader)
    assert [b["views"].shape for b in batches] == [(8, 5, 24, 24, 3), (8, 5, 24, 24, 3)]
    reported = [s for b in batches for s in b["skipped"]]
    assert len(reported) >= 4  # every bad file, at least once
    view = batches[0]["views"][3].permute(0, 3, 1, 2)
    assert view.shape == (5, 3, 24, 24) and view.is_contiguous(memory_format=torch.channels_last)


def test_collate_layout():
    samples = [{"views": torch.full((3, 4, 4, 3), i, dtype=torch.uint8), "index": i, "skipped": []} for i in range(2)]
    batch = collate_views(samples)
    assert batch["views"].shape == (3, 2, 4, 4, 3) and batch["views"].is_contiguous()
    assert torch.equal(batch["views"][:, 1], torch.full((3, 4, 4, 3), 1, dtype=torch.uint8))
    assert batch["index"].tolist() == [0, 1]


def test_all_bad_is_an_error(tmp_path):
    for i in range(3):
        (tmp_path / f"x{i}.jpg").write_bytes(b"nope")
    data = ViewDataset(load_dataset(f"folder:{tmp_path}"), MoCoV2Transform(size=8))
    with pytest.raises(RuntimeError, match="could not be decoded"):
        data[0]


def _smooth_jpeg(path, w=640, h=480):
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.stack([xx * 255 / w, yy * 255 / h, (xx + yy) * 127 / (w + h)], -1).astype(np.uint8)
    Image.fromarray(img).save(path, quality=95)


@pytest.mark.parametrize("size,scale,expected", [(64, (0.9, 1.0), 4), (64, (0.02, 0.03), 1), (200, (0.9, 1.0), 2)])
def test_jpegs_decode_only_as_large_as_the_smallest_crop_needs(tmp_path, size, scale, expected):
    from scene_ssl.data.views import decode_for_views
    from scene_ssl.data.sampler import seeded_generator

    _smooth_jpeg(tmp_path / "a.jpg")
    transform = MoCoV2Transform(size=size, scale=scale)
    image, params = decode_for_views(str(tmp_path / "a.jpg"), transform, seeded_generator(0, 0, 0))
    assert image.size == (640 // expected, 480 // expected)
    full = transform.sample(640, 480, generator=seeded_generator(0, 0, 0))  # the same draw, in full pixels
    assert torch.allclose(params.crop * expected, full.crop)
    sides = torch.minimum(params.crop[:, 2] - params.crop[:, 0], params.crop[:, 3] - params.crop[:, 1])
    assert bool((sides >= size - 1e-6).all())  # every view still has at least its output resolution
    reduced = transform.render(image, params).float()
    reference = transform.render(Image.open(tmp_path / "a.jpg").convert("RGB"), full).float()
    assert (reduced - reference).abs().mean() < 3.0  # the same views but for resampling


def test_reduce_false_decodes_in_full_with_the_same_draw(tmp_path):
    from scene_ssl.data.views import decode_for_views
    from scene_ssl.data.sampler import seeded_generator

    _smooth_jpeg(tmp_path / "a.jpg")
    transform = MoCoV2Transform(size=64, scale=(0.9, 1.0))  # would decode at 1/4 with reduce=True
    image, params = decode_for_views(str(tmp_path / "a.jpg"), transform, seeded_generator(0, 0, 0), reduce=False)
    assert image.size == (640, 480)
    full = transform.sample(640, 480, generator=seeded_generator(0, 0, 0))
    assert torch.equal(params.crop, full.crop)
