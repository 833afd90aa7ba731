import importlib.util
import json
import sys
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
    from scene_ssl.train import MLSConfig, load_config, pretrain
    sys.path.insert(0, str(ROOT / "recipes"))
    import pretrain_mls

    tmp = tmp_path_factory.mktemp("run")
    scenes = make_scenes(tmp / "scenes", num_classes=3, num_train=16, num_val=4, image_size=(40, 30))
    cfg = load_config(MLSConfig, None, dict(data=f"coco:{scenes}", backbone="test_resnet", image_size=16, batch_size=8,
                                            num_workers=0, max_steps=2, queue_size=16, dim=8, hidden_dim=16, topk=2,
                                            output_dir=str(tmp / "out"), export_tag="mls_test", channels_last=False))
    run = pretrain(cfg, pretrain_mls.build_model, pretrain_mls.build_transform, accelerator=Accelerator(cpu=True))
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
