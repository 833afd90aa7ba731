"""One decoding rule on every path (the workers' PIL, the DCT-reduced JPEG, the device's JPEG
decoder, the probes): 8 bits from any bit depth, EXIF orientation applied, and a longest side,
so that one huge photo never costs more memory than the batch allows."""
import numpy as np
import pytest
import torch
from PIL import Image, ImageOps

from scene_ssl.data import ViewDataset, collate_decoded, collate_encoded, load_dataset
from scene_ssl.data.decode import decode_image
from scene_ssl.data.device_decode import decode_batch
from scene_ssl.probe.features import ProbeImages
from scene_ssl.transforms import MoCoV2Transform


def _arrow(w: int, h: int) -> np.ndarray:
    """A picture with an up: red top-left quarter, green bottom band."""
    a = np.full((h, w, 3), 128, np.uint8)
    a[: h // 2, : w // 2] = (255, 0, 0)
    a[-h // 4 :, :] = (0, 255, 0)
    return a


def _save_turned(path, picture: np.ndarray, orientation: int) -> None:
    """Store ``picture`` as a camera would: the pixels turned back, the EXIF tag saying how to show them."""
    undo = {6: Image.Transpose.ROTATE_90, 8: Image.Transpose.ROTATE_270, 3: Image.Transpose.ROTATE_180}[orientation]
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(picture).transpose(undo).save(path, quality=95, exif=exif)


@pytest.mark.parametrize("fmt", ["png", "tiff"])
def test_a_16_bit_image_is_scaled_to_8_bits_not_clipped_white(tmp_path, fmt):
    grey = (np.linspace(0, 65535, 64 * 48).reshape(48, 64)).astype(np.uint16)
    Image.fromarray(grey).save(tmp_path / f"deep.{fmt}")
    decoded = np.asarray(decode_image(tmp_path / f"deep.{fmt}"))
    assert decoded.shape == (48, 64, 3) and decoded.dtype == np.uint8
    np.testing.assert_array_equal(decoded[..., 0], grey >> 8)  # main 8d5e37d: all 255
    # the same pixels reach the device renderer and the probes
    data = load_dataset(f"folder:{tmp_path}")
    item = ViewDataset(data, MoCoV2Transform(size=16), render="process")[0]
    np.testing.assert_array_equal(item["image"].numpy()[..., 1], grey >> 8)
    pixels = ProbeImages(data, 48)[0]["pixels"].numpy()
    assert abs(pixels.mean() - (grey >> 8).mean()) < 2


def test_alpha_is_dropped_and_palettes_become_rgb(tmp_path):
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., :3] = (10, 200, 30)
    rgba[..., 3] = 0  # fully transparent: the rule keeps the colour underneath (torchvision, timm)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    Image.fromarray(rgba[..., :3]).convert("P").save(tmp_path / "p.png", transparency=0)
    for name in ("a.png", "p.png"):
        decoded = np.asarray(decode_image(tmp_path / name))
        underneath = np.asarray(Image.open(tmp_path / name).convert("RGBA"))[..., :3]  # (the palette's nearest colour)
        assert decoded.shape == (8, 8, 3) and np.array_equal(decoded, underneath), name


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_exif_orientation_is_applied_on_every_path(tmp_path, orientation):
    picture = _arrow(96, 64)  # upright: landscape
    _save_turned(tmp_path / "photo.jpg", picture, orientation)
    stored = Image.open(tmp_path / "photo.jpg")
    upright = np.asarray(ImageOps.exif_transpose(stored).convert("RGB")).astype(float)
    assert upright.shape == (64, 96, 3)
    assert np.abs(np.asarray(decode_image(tmp_path / "photo.jpg")).astype(float) - upright).mean() < 1  # PIL path
    data = load_dataset(f"folder:{tmp_path}")
    transform = MoCoV2Transform(size=48)  # crops too small for a DCT-reduced decode: full size on both paths
    worker = collate_decoded([ViewDataset(data, transform, render="process")[0]])  # decoded in the worker
    device = decode_batch(collate_encoded([ViewDataset(data, transform, render="device")[0]]), "cpu")  # the device's decoder
    for batch in (worker, device):
        image = batch["images"][0].numpy().astype(float)
        assert image.shape == (64, 96, 3)  # main 8d5e37d: the stored (turned) pixels
        assert np.abs(image - upright).mean() < 3
    assert torch.allclose(worker["params"]["crop"], device["params"]["crop"])  # the same crops, upright


def test_a_huge_image_is_used_at_the_longest_side_on_every_path(tmp_path):
    Image.fromarray(_arrow(3000, 2000)).save(tmp_path / "huge.png", compress_level=1)
    Image.fromarray(_arrow(3000, 2000)).save(tmp_path / "huge.jpg", quality=90)
    data = load_dataset(f"folder:{tmp_path}")
    transform = MoCoV2Transform(size=24)  # longest side: 4 x 24 = 96
    full = ViewDataset(data, transform, render="process", max_side=10_000, reduce_decode=False)
    for render in ("process", "device", "cpu"):
        dataset = ViewDataset(data, transform, render=render)
        assert dataset.max_side == 96
        items = [dataset[i] for i in range(len(dataset))]
        if render == "cpu":  # the views, rendered in the worker from the capped image
            assert all(item["views"].shape == (2, 24, 24, 3) for item in items)
            continue
        batch = collate_decoded(items) if render == "process" else decode_batch(collate_encoded(items), "cpu", dataset.max_side)
        assert tuple(batch["images"].shape) == (2, 64, 96, 3)  # main 8d5e37d: (2, 2000, 3000, 3)
        # the same crops as without the cap, in the smaller image's pixels
        uncapped = collate_decoded([full[i] for i in range(len(full))])["params"]["crop"]
        torch.testing.assert_close(batch["params"]["crop"] * (3000 / 96), uncapped, rtol=2e-2, atol=1.0)


def test_a_jpeg_the_device_decoder_rejects_is_turned_once_by_the_pil_fallback(tmp_path, monkeypatch):
    import scene_ssl.data.device_decode as device_decode

    picture = _arrow(48, 32)
    _save_turned(tmp_path / "photo.jpg", picture, 6)
    data = load_dataset(f"folder:{tmp_path}")
    batch = collate_encoded([ViewDataset(data, MoCoV2Transform(size=48), render="device")[0]])
    normal = decode_batch(batch, "cpu")

    def refuse(*args, **kwargs):
        raise RuntimeError("the device decoder refuses this file")

    monkeypatch.setattr(device_decode, "decode_jpeg", refuse)
    fallback = decode_batch(batch, "cpu")  # main of this change: turned twice, (32, 48), crops past the image
    assert fallback["images"].shape == normal["images"].shape == (1, 32, 48, 3)
    assert torch.allclose(fallback["params"]["crop"], normal["params"]["crop"])
    assert (fallback["images"].float() - normal["images"].float()).abs().mean() < 3
