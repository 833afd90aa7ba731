"""What a new user meets first: --help, one-line errors, and an export whose card carries its results."""
import dataclasses
import json
import re

import pytest
import yaml
from huggingface_hub import ModelCard

from scene_ssl.data import make_scenes
from scene_ssl.metrics import METRIC_NAMES
from scene_ssl.config import load_config
from scene_ssl.models import BAMConfig, MLSConfig

from .conftest import ROOT, load_recipe

RECIPES = {"pretrain_mls": (MLSConfig, "mls_scenes.yaml"), "pretrain_bam": (BAMConfig, "bam_scenes.yaml")}


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    return make_scenes(tmp_path_factory.mktemp("d") / "s", num_classes=4, num_train=40, num_val=20, image_size=(48, 36))


@pytest.mark.parametrize("recipe", sorted(RECIPES))
def test_help_describes_every_flag_with_the_default_that_applies(recipe, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "1000")  # one line per flag
    cls, yaml_name = RECIPES[recipe]
    with pytest.raises(SystemExit) as exit_:
        load_recipe(recipe).main(["--help"])
    assert exit_.value.code == 0
    entries = {}  # flag -> its help entry (argparse puts the text of a long flag on the next line)
    for line in capsys.readouterr().out.splitlines():
        if line.startswith("  --"):
            flag = line.split()[0]
            entries[flag] = line
        elif line.startswith("      ") and entries:
            entries[flag] += " " + line.strip()
    path = ROOT / "recipes" / "configs" / yaml_name
    from_yaml, applied = yaml.safe_load(path.read_text()), load_config(cls, path)
    for field in dataclasses.fields(cls):
        flag = "--" + field.name.replace("_", "-")
        assert flag in entries, f"{flag} is missing from --help"
        described, default = re.match(rf"\s*{flag} \S+\s+(.*) \(default: (.*)\)$", entries[flag]).groups()
        assert len(described) > 5, f"{flag} has no description"
        if field.name in from_yaml:
            assert default == f"{getattr(applied, field.name)}, from {yaml_name}", (flag, default)
        else:
            assert default == str(field.default), (flag, default)


@pytest.mark.parametrize("recipe,args,flag", [
    ("pretrain_mls", ["--data", "coco:/nope"], "coco:/nope"),
    ("pretrain_mls", ["--epochs", "0"], "--epochs"),
    ("pretrain_mls", ["--max-steps", "0"], "--max-steps"),
    ("pretrain_mls", ["--topk", "5000"], "--topk"),
    ("pretrain_bam", ["--ia-temperature", "0"], "--ia-temperature"),
    ("pretrain_bam", ["--overlap", "0.7"], "--overlap"),
    ("pretrain_mls", ["--config", "/nope.yaml"], "/nope.yaml"),
])
def test_user_errors_are_one_line_exit_2_and_leave_no_config(recipe, args, flag, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        load_recipe(recipe).main([*args, "--output-dir", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_.value.code == 2
    assert len(err) == 1 and err[0].startswith("error: ") and flag in err[0], err
    assert not (tmp_path / "out" / "config.yaml").exists()


def test_main_job_export_carries_its_probe_results_in_the_card(scenes, tmp_path):
    out = tmp_path / "out"
    run = load_recipe("pretrain_mls").main([
        "--data", f"coco:{scenes}", "--probe-data", f"coco:{scenes}", "--output-dir", str(out), "--max-steps", "2",
        "--batch-size", "8", "--num-workers", "0", "--queue-size", "32", "--topk", "4", "--dim", "16",
        "--hidden-dim", "32", "--image-size", "24", "--probe-image-size", "24", "--probe-epochs", "2"])
    assert run.finished
    probe = json.loads((out / "probe.json").read_text())
    card = ModelCard.load(out / "export" / "README.md")
    assert card.data.model_name == "test_resnet-mls-coco" and "\n# test_resnet-mls-coco\n" in card.text
    values = {r.metric_type: r.metric_value for r in card.data.eval_results}
    assert set(values) == set(METRIC_NAMES)
    assert all(values[k] == pytest.approx(round(probe["pretrained"][k], 2)) for k in METRIC_NAMES)
    meta = json.loads((out / "export" / "scene_ssl.json").read_text())
    assert meta["results"][0]["metrics"]["mAP"] == pytest.approx(probe["pretrained"]["mAP"], abs=1e-3)
    assert "No evaluation was run" not in card.text and "random init" in card.text

    # a standalone probe of the export adds its result to the same card
    load_recipe("probe_knn").main(["--model", str(out), "--data", f"coco:{scenes}", "--k", "3", "--num-workers", "0",
                                   "--output-dir", str(tmp_path / "knn")])
    names = {r["name"] for r in json.loads((out / "export" / "scene_ssl.json").read_text())["results"]}
    assert any("knn" in n for n in names) and any("linear" in n for n in names)
