import importlib.util
import json
from pathlib import Path

import pytest
import timm
import torch

from scene_ssl.data import make_scenes

from ..hub_cache import fill_hf_cache
from .fake_hub import FakeHub

ROOT = Path(__file__).resolve().parents[2]


def _module(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "hub" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """A real (tiny) training output folder: checkpoints with optimizer state, export, config."""
    from accelerate import Accelerator

    from scene_ssl.export import export_run
    from scene_ssl.config import load_config
    from scene_ssl.models import MLSConfig
    from scene_ssl.train import pretrain

    tmp = tmp_path_factory.mktemp("run")
    scenes = make_scenes(tmp / "scenes", num_classes=3, num_train=16, num_val=4, image_size=(40, 30))
    cfg = load_config(MLSConfig, None, dict(data=f"coco:{scenes}", backbone="test_resnet", image_size=16, batch_size=8,
                                            num_workers=0, max_steps=2, queue_size=16, dim=8, hidden_dim=16, topk=2,
                                            output_dir=str(tmp / "out"), export_tag="mls_test", channels_last=False))
    run = pretrain(cfg, accelerator=Accelerator(cpu=True))
    export_run(run, cfg)
    return tmp / "out", run.model.encoder.model


def test_push_creates_the_repo_and_uploads_only_model_files(trained_run, tmp_path, monkeypatch):
    import huggingface_hub.constants as hf_constants

    out, trained = trained_run
    assert any((out / "checkpoints").rglob("optimizer*.bin"))  # there is optimizer state to leave behind
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", False)
    push = _module("push")
    with FakeHub() as hub:
        push.main([str(out), "scene-ssl/tiny-mls", "--token", "hf_test_token", "--endpoint", hub.endpoint,
                   "--private", "--create-pr"])
    created = hub.repos["scene-ssl/tiny-mls"]
    assert created.get("visibility") == "private" or created.get("private") is True  # newer / older huggingface_hub
    # --create-pr: a pull request was opened and the commit went to its ref, not to main
    assert [pr["pullRequest"] for pr in hub.prs["scene-ssl/tiny-mls"]] == [True]
    assert [c["revision"].replace("%2F", "/") for c in hub.commits] == ["refs/pr/1"]
    assert hub.validated and "timm" in json.dumps(hub.validated[0])  # the card's YAML was sent for validation
    uploaded = hub.files["scene-ssl/tiny-mls"]
    assert set(uploaded) == {"config.json", "model.safetensors", "README.md", "scene_ssl.json"}
    assert all(auth == "Bearer hf_test_token" for _, _, auth in hub.requests)
    assert b'hf-hub:scene-ssl/tiny-mls' in uploaded["README.md"]

    # what was pushed loads back with timm through the Hub cache layout, offline
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(tmp_path / "hf_cache"))
    fill_hf_cache(tmp_path / "hf_cache", "scene-ssl/tiny-mls", uploaded)
    model = timm.create_model("hf-hub:scene-ssl/tiny-mls", pretrained=True)
    for k, v in model.state_dict().items():
        assert torch.equal(v, trained.state_dict()[k]), k


def test_no_token_is_a_clear_error(trained_run, monkeypatch):
    out, _ = trained_run
    push = _module("push")
    monkeypatch.setattr(push, "get_token", lambda: None)
    with pytest.raises(SystemExit, match="no Hugging Face token"):
        push.main([str(out), "scene-ssl/x"])
    with pytest.raises(SystemExit, match="org/name"):
        push.main([str(out), "just-a-name", "--token", "t"])


def test_a_push_with_its_own_tag_keeps_the_method_that_trained(trained_run, tmp_path):
    import shutil

    from huggingface_hub import ModelCard

    out, _ = trained_run
    push = _module("push")
    staged = push.stage(str(out), "scene-ssl/x", tmp_path / "a", tag="simsiam_renamed")
    card = ModelCard.load(staged / "README.md")
    assert json.loads((staged / "config.json").read_text())["pretrained_cfg"]["tag"] == "simsiam_renamed"
    assert "mls" in card.data.tags and "simsiam" not in card.data.tags
    assert "**MLS**" in card.text and "Zhu" in card.text and "SimSiam" not in card.text
    # a training folder without its export: the method comes from the newest checkpoint
    bare = tmp_path / "bare"
    shutil.copytree(out, bare, ignore=shutil.ignore_patterns("export"))
    card = ModelCard.load(push.stage(str(bare), "scene-ssl/x", tmp_path / "b", tag="run7") / "README.md")
    assert "mls" in card.data.tags and "**MLS**" in card.text


def test_the_card_template_is_the_top_level_model_card():
    from scene_ssl import card

    packaged = Path(card.__file__).with_name("MODEL_CARD.md")
    assert packaged.resolve() == (ROOT / "MODEL_CARD.md").resolve()  # one file: the package's is a link to it
    assert card._template() == (ROOT / "MODEL_CARD.md").read_text()
