import json

import numpy as np
import pytest
import torch
from PIL import Image

from scene_ssl.data import make_scenes
from scene_ssl.export import save_pretrained
from scene_ssl.models import TimmBackbone

from .conftest import load_recipe


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    return make_scenes(tmp_path_factory.mktemp("d") / "s", num_classes=4, num_train=40, num_val=20, image_size=(48, 36))


@pytest.fixture(scope="module")
def export(tmp_path_factory):
    torch.manual_seed(0)
    return save_pretrained(TimmBackbone("test_resnet"), tmp_path_factory.mktemp("e") / "export", tag="mls_test")


def test_linear_probe_end_to_end_and_feature_cache(scenes, export, tmp_path, monkeypatch):
    probe = load_recipe("probe_linear")
    args = ["--model", str(export), "--data", f"coco:{scenes}", "--image-size", "32", "--epochs", "3",
            "--num-workers", "0", "--output-dir", str(tmp_path)]
    first = probe.main(args)
    saved = json.loads((tmp_path / "metrics.json").read_text())
    for key in ("mAP", "CP", "CR", "CF1", "OP", "OR", "OF1"):
        assert 0.0 <= saved[key] <= 100.0 and saved[key] == pytest.approx(first[key])
    assert sorted(saved["per_class_AP"]) == sorted(["stripes circle", "dots square", "checks triangle", "solid star"])
    assert saved["pool"] == "avgmax" and set(saved["top3"]) >= {"CP", "OP"}
    assert len(list((tmp_path / "features").glob("*.pt"))) == 2

    import scene_ssl.probe.run as run_module

    monkeypatch.setattr(run_module, "extract_features", lambda *a, **k: (_ for _ in ()).throw(AssertionError("not cached")))
    again = probe.main(args)  # both splits come from the cache now
    assert again["mAP"] == pytest.approx(first["mAP"])


def test_linear_probe_options(scenes, export, tmp_path):
    probe = load_recipe("probe_linear")
    base = ["--model", str(export), "--data", f"coco:{scenes}", "--image-size", "32", "--epochs", "2", "--num-workers", "0"]
    avg = probe.main(base + ["--pool", "avg", "--output-dir", str(tmp_path / "avg")])
    online = probe.main(base + ["--cache-features", "false", "--output-dir", str(tmp_path / "online")])
    parity = probe.main(base + ["--logit-threshold", "0.6", "--output-dir", str(tmp_path / "parity")])
    assert avg["pool"] == "avg" and 0 <= online["mAP"] <= 100 and 0 <= parity["OP"] <= 100


def test_single_label_folder(tmp_path):
    rng = np.random.default_rng(0)
    for split, n in (("train", 6), ("val", 3)):
        for cls, colour in (("red", (220, 20, 20)), ("blue", (20, 20, 220))):
            (tmp_path / "data" / split / cls).mkdir(parents=True)
            for i in range(n):
                px = np.clip(np.array(colour) + rng.normal(0, 10, (24, 24, 3)), 0, 255).astype(np.uint8)
                Image.fromarray(px).save(tmp_path / "data" / split / cls / f"{i}.png")
    probe = load_recipe("probe_linear")
    out = probe.main(["--model", "random:test_resnet", "--data", f"folder:{tmp_path / 'data'}", "--image-size", "24",
                      "--epochs", "20", "--batch-size", "4", "--num-workers", "0", "--output-dir", str(tmp_path / "o")])
    assert out["mode"] == "singlelabel" and out["top1"] == pytest.approx(100.0)  # colour is trivially separable
    knn = load_recipe("probe_knn").main(["--model", "random:test_resnet", "--data", f"folder:{tmp_path / 'data'}",
                                         "--image-size", "24", "--k", "3", "--num-workers", "0",
                                         "--output-dir", str(tmp_path / "k")])
    assert knn["mode"] == "singlelabel" and knn["top1"] == pytest.approx(100.0)


def test_knn_probe_multilabel(scenes, export, tmp_path):
    out = load_recipe("probe_knn").main(["--model", str(export), "--data", f"coco:{scenes}", "--image-size", "32",
                                         "--k", "5", "--num-workers", "0", "--output-dir", str(tmp_path)])
    assert out["mode"] == "multilabel" and 0 <= out["mAP"] <= 100
    assert json.loads((tmp_path / "metrics.json").read_text())["k"] == 5


def test_probe_needs_labels(tmp_path, capsys):
    (tmp_path / "imgs").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "imgs" / "a.png")
    with pytest.raises(SystemExit) as exit_:
        load_recipe("probe_linear").main(["--model", "random:test_resnet", "--data", f"folder:{tmp_path / 'imgs'}",
                                          "--output-dir", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "no class subfolders" in err and len(err.strip().splitlines()) == 1


def test_visualize_nn_and_loss_curve(scenes, export, tmp_path):
    log = tmp_path / "train_log.jsonl"
    log.write_text("\n".join(json.dumps({"step": s, "loss": 5 - s / 10, "loss_nce": 4 - s / 20}) for s in range(1, 20)))
    viz = load_recipe("visualize_nn")
    out = viz.main(["--model", str(export), "--data", f"coco:{scenes}", "--gallery-images", "10", "--queries", "3",
                    "--k", "4", "--crop-size", "24", "--output-dir", str(tmp_path / "viz"), "--log", str(log)])
    assert out == {"nearest_neighbours": tmp_path / "viz" / "nearest_neighbours.png", "loss_curve": tmp_path / "viz" / "loss_curve.png"}
    grid = Image.open(out["nearest_neighbours"])
    panel_width = 10 + (4 + 1) * (24 + 4) + 4  # the query, 4 neighbours, per backbone
    assert grid.size == (2 * panel_width + 12, 30 + 34 + 3 * (24 + 4) + 4)  # the model's panel and random init's
    assert np.asarray(grid).std() > 10  # real pictures, not a blank canvas
    alone = viz.main(["--model", str(export), "--data", f"coco:{scenes}", "--gallery-images", "10", "--queries", "3",
                      "--k", "4", "--crop-size", "24", "--compare-random", "false", "--output-dir", str(tmp_path / "one"),
                      "--log", "none"])
    assert Image.open(alone["nearest_neighbours"]).size[0] == panel_width
    curve = np.asarray(Image.open(out["loss_curve"]))
    assert curve.shape == (420, 760, 3)
    plot, legend = curve[40:370, 70:630], curve[40:370, 630:]
    assert (plot != 255).any() and (legend != 255).any()  # the legend has its own column beside the curves
