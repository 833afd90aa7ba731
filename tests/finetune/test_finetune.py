"""Fine-tuning: the backbone moves (a probe's does not), the grid picks on val and retrains on
train + val, seeds aggregate, the quick recipe reports and fills the card."""
import json

import pytest
import torch
from accelerate import Accelerator
from accelerate.state import AcceleratorState, GradientState

from scene_ssl.config import load_config
from scene_ssl.data import load_dataset, make_scenes
from scene_ssl.export import save_pretrained
from scene_ssl.finetune import FinetuneConfig, finetune_once, run_finetune
from scene_ssl.loading import load_backbone
from scene_ssl.models import TimmBackbone
from scene_ssl.probe import HeadOptions, linear_probe

from ..recipes.conftest import load_recipe


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    return make_scenes(tmp_path_factory.mktemp("ft") / "s", num_classes=4, num_train=32, num_val=16, image_size=(48, 36))


@pytest.fixture
def export(tmp_path):
    torch.manual_seed(0)
    return save_pretrained(TimmBackbone("test_resnet"), tmp_path / "export", tag="t", method="mls",
                           train_config={"data": "scenes", "image_size": 32})


def _cfg(scenes, export, tmp_path, **kw):
    base = dict(model=str(export), data=f"coco:{scenes}", mode="largest", image_size=32, steps=4, batch_size=8,
                lr=0.05, num_workers=0, output_dir=str(tmp_path / "out"), test_resize="squash")
    return load_config(FinetuneConfig, None, {**base, **kw})


def _accelerator():
    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()
    return Accelerator(cpu=True)


def test_fine_tuning_changes_the_backbone_and_a_linear_probe_does_not(scenes, export, tmp_path):
    cfg = _cfg(scenes, export, tmp_path)
    train, val = load_dataset(cfg.data, "train"), load_dataset(cfg.data, "val")
    before = load_backbone(str(export)).state_dict()
    run = finetune_once(str(export), train, val, cfg, single=True, lr=0.05, weight_decay=0.0, seed=0,
                        accelerator=_accelerator())
    after = run.model.backbone.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before if before[k].is_floating_point())
    assert set(run.metrics) == {"top1", "top5", "mean_per_class"}
    probed = load_backbone(str(export))
    linear_probe(probed, train, val, HeadOptions(image_size=32, epochs=2, num_workers=0), single_label=False)
    assert all(torch.equal(before[k], v) for k, v in probed.state_dict().items())


def test_the_grid_picks_the_best_val_setting_and_retrains_on_train_plus_val(scenes, export, tmp_path, monkeypatch):
    import scene_ssl.finetune.run as run_module
    from scene_ssl.finetune.train import Run

    seen = []

    def fake(source, train, test, cfg, *, single, lr, weight_decay, seed, accelerator, desc="fine-tune", log_dir=None):
        seen.append({"source": source, "train": len(train), "test": len(test), "lr": lr, "wd": weight_decay})
        good = 90.0 if (lr, round(weight_decay * lr, 12)) == (0.01, 1e-4) else 10.0 + lr  # the best: lr 0.01, wd 1e-4 / lr
        return Run({"top1": good, "top5": good, "mean_per_class": good}, None)

    monkeypatch.setattr(run_module, "finetune_once", fake)
    cfg = _cfg(scenes, export, tmp_path, grid=True, compare_random=False, grid_lrs=(0.1, 0.01), grid_wds=(0.0, 1e-4))
    result = run_finetune(cfg, accelerator=_accelerator())
    grid, final = seen[:-1], seen[-1]
    assert len(grid) == 4 and all(g["train"] == 26 and g["test"] == 6 for g in grid)  # 32 train: a seeded 20 % held out
    assert final["train"] == 32 and final["test"] == 16  # retrained on all of train (= train + its val), scored on test
    assert final["lr"] == 0.01 and final["wd"] == pytest.approx(1e-4 / 0.01)
    assert result["results"]["pretrained"]["lr"] == 0.01
    rows = json.loads((tmp_path / "out" / "pretrained" / "grid.json").read_text())
    assert len(rows) == 4 and max(rows, key=lambda r: r["top1"])["lr"] == 0.01


def test_an_official_val_split_is_used_then_joined_to_train(scenes, export, tmp_path, monkeypatch):
    import scene_ssl.finetune.run as run_module
    from scene_ssl.finetune.train import Run

    seen = []
    monkeypatch.setattr(run_module, "finetune_once", lambda source, train, test, cfg, **kw: (
        seen.append((len(train), len(test))), Run({"top1": kw["lr"], "top5": 0.0, "mean_per_class": 0.0}, None))[1])
    cfg = _cfg(scenes, export, tmp_path, grid=True, compare_random=False, grid_lrs=(0.1, 0.01), grid_wds=(0.0,),
               val_split="val", test_split="val")
    run_finetune(cfg, accelerator=_accelerator())
    assert seen[:2] == [(32, 16), (32, 16)] and seen[2] == (48, 16)  # grid: train -> val; final: train + val


def test_the_quick_recipe_runs_two_seeds_and_puts_mean_and_std_in_the_card(scenes, export, tmp_path):
    rows = load_recipe("finetune_classification").main([
        "--model", str(export), "--data", f"coco:{scenes}", "--image-size", "32", "--steps", "3", "--batch-size", "8",
        "--num-workers", "0", "--seeds", "0,1", "--output-dir", str(tmp_path / "out"), "--log-every", "2"])
    assert set(rows["results"]) == {"pretrained", "random init"} and rows["runs"] == 2
    logged = [json.loads(line) for line in (tmp_path / "out" / "seed_1" / "random_init" / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in logged] == [2, 3] and all(r["loss"] > 0 for r in logged)  # each final run's own log
    assert set(rows["seeds"]) == {0, 1} and (tmp_path / "out" / "seed_1" / "result.json").is_file()
    saved = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert saved["results"]["pretrained"]["top1"] == pytest.approx(
        (rows["seeds"][0]["pretrained/top1"] + rows["seeds"][1]["pretrained/top1"]) / 2)
    card = (export / "README.md").read_text()
    assert "single-label fine-tuning (32 px, 3 steps)" in card and "(mean ± std of 2 runs)" in card


def test_persistent_workers_draw_new_crops_each_epoch_and_a_missing_first_image_is_no_crash(scenes, tmp_path):
    import shutil

    from torch.utils.data import DataLoader

    from scene_ssl.finetune.data import FinetuneImages, collate_finetune
    from scene_ssl.probe import ProbeImages

    data = load_dataset(f"coco:{scenes}", "train")
    images = FinetuneImages(data, 24, train=True, single=True, largest=True)
    loader = DataLoader(images, batch_size=8, num_workers=1, persistent_workers=True, collate_fn=collate_finetune)
    epochs = []
    for epoch in (0, 1):
        images.set_epoch(epoch)
        epochs.append(torch.cat([b["pixels"] for b in loader]))
    assert not torch.equal(epochs[0], epochs[1])  # the workers saw the epoch change (a plain attribute: they did not)
    root = tmp_path / "s"
    shutil.copytree(scenes, root)
    first = load_dataset(f"coco:{root}", "train").cast_column("image", __import__("datasets").Image(decode=False))[0]
    __import__("os").unlink(first["image"]["path"])
    broken = load_dataset(f"coco:{root}", "train")
    assert FinetuneImages(broken, 24, train=True, single=True, largest=True).num_classes == 4
    assert ProbeImages(broken, 24).num_classes == 4  # read without decoding image 0
