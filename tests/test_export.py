import json

import pytest
import timm
import torch
from huggingface_hub import ModelCard
from safetensors.torch import load_file

from scene_ssl.export import add_results, evaluation_result, read_export, save_pretrained
from scene_ssl.models import TimmBackbone

from .hub_cache import fill_hf_cache

METRICS = {"mAP": 61.25, "CP": 70.0, "CR": 50.0, "CF1": 58.3, "OP": 75.0, "OR": 55.0, "OF1": 63.5}
PROBE = evaluation_result("image-classification", "multi-label linear probe (avgmax, 160 px)", "coco", METRICS,
                          source="main job")


@pytest.fixture
def exported(tmp_path):
    torch.manual_seed(0)
    backbone = TimmBackbone("test_resnet")
    out = save_pretrained(backbone, tmp_path / "export", tag="mls_coco", method="mls", results=[PROBE],
                          train_config={"data": "coco:/data/coco", "backbone": "test_resnet", "image_size": 160, "topk": 20})
    return backbone, out


def test_our_pretrained_cfg_not_the_registry_default(exported):
    backbone, out = exported
    cfg = json.loads((out / "config.json").read_text())
    pc = cfg["pretrained_cfg"]
    assert backbone.model.pretrained_cfg["tag"] == "r160_in1k"  # the registry default we must not leak
    assert pc["tag"] == "mls_coco" and pc["license"] == "apache-2.0"
    assert "MLS" in pc["description"] and "r160_in1k" not in json.dumps(cfg)
    resolved = timm.data.resolve_model_data_config(backbone.model)  # what training normalised with
    assert tuple(pc["input_size"]) == (3, 160, 160)
    assert tuple(pc["mean"]) == pytest.approx(resolved["mean"]) and tuple(pc["std"]) == pytest.approx(resolved["std"])
    assert cfg["architecture"] == "test_resnet" and cfg["num_classes"] == 0
    for leaked in ("hf_hub_id", "origin_url", "paper_ids", "notes"):
        assert leaked not in pc


def test_weights_round_trip_through_local_dir(exported):
    backbone, out = exported
    saved = load_file(str(out / "model.safetensors"))
    for k, v in backbone.model.state_dict().items():
        assert torch.equal(saved[k], v)
    loaded = timm.create_model(f"local-dir:{out}", pretrained=True)
    assert loaded.pretrained_cfg["tag"] == "mls_coco" and loaded.num_classes == 0
    for k, v in loaded.state_dict().items():
        assert torch.equal(v, backbone.model.state_dict()[k])


def test_model_card_parses_and_carries_eval_results(exported):
    _, out = exported
    card = ModelCard.load(out / "README.md")
    data = card.data
    assert data.library_name == "timm" and "self-supervised" in data.tags and "mls" in data.tags
    results = {r.metric_type: r.metric_value for r in data.eval_results}
    assert results == {k: pytest.approx(round(v, 2)) for k, v in METRICS.items()} and len(results) == 7
    assert {r.task_type for r in data.eval_results} == {"image-classification"}
    assert "timm.create_model" in card.text and "Zhu" in card.text and "`topk`" in card.text


def test_export_has_a_real_name_and_a_true_pool_size(exported):
    _, out = exported
    card = ModelCard.load(out / "README.md")
    assert card.data.model_name == "test_resnet-mls-coco" and "# test_resnet-mls-coco" in card.text
    assert read_export(out)["name"] == "test_resnet-mls-coco"
    pc = json.loads((out / "config.json").read_text())["pretrained_cfg"]
    model = timm.create_model("test_resnet", num_classes=0)
    with torch.no_grad():  # the feature map a 160 px input really gives
        assert tuple(pc["pool_size"]) == tuple(model.forward_features(torch.zeros(1, 3, 160, 160)).shape[-2:]) == (5, 5)
    small = save_pretrained(model, out.parent / "small", tag="mls_scenes", method="mls", train_config={"image_size": 40})
    assert tuple(json.loads((small / "config.json").read_text())["pretrained_cfg"]["pool_size"]) == (2, 2)


def test_add_results_appends_and_replaces_the_same_evaluation(exported):
    _, out = exported
    knn = evaluation_result("image-classification", "multi-label knn probe (avg, 160 px)", "coco", {"mAP": 50.0})
    add_results(out, [knn])
    add_results(out, [{**PROBE, "metrics": {**METRICS, "mAP": 62.5}, "source": "probe_linear.py"}])
    results = read_export(out)["results"]
    assert [r["name"] for r in results] == [knn["name"], PROBE["name"]]  # the probe replaced its older self
    card = ModelCard.load(out / "README.md")
    values = [(r.metric_name, r.metric_value) for r in card.data.eval_results]
    assert (f"mAP ({PROBE['name']})", 62.5) in values and (f"mAP ({knn['name']})", 50.0) in values
    assert (f"mAP ({PROBE['name']})", 61.25) not in values and "probe_linear.py" in card.text


def test_hf_hub_loading_offline_from_a_prefilled_cache(exported, tmp_path, monkeypatch):
    import huggingface_hub.constants as hf_constants

    backbone, out = exported
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(tmp_path / "hf_cache"))
    fill_hf_cache(tmp_path / "hf_cache", "scene-ssl/test-resnet-mls", out)
    model = timm.create_model("hf-hub:scene-ssl/test-resnet-mls", pretrained=True)
    for k, v in model.state_dict().items():
        assert torch.equal(v, backbone.model.state_dict()[k]), k
    assert model.pretrained_cfg["tag"] == "mls_coco"


def test_channels_last_and_mutation_safety(tmp_path):
    backbone = TimmBackbone("test_resnet").to(memory_format=torch.channels_last)
    before = dict(backbone.model.pretrained_cfg)
    save_pretrained(backbone, tmp_path / "e", tag="bam_scenes", method="bam")
    assert backbone.model.pretrained_cfg == before  # the caller's model is untouched
    assert "BAM" in ModelCard.load(tmp_path / "e" / "README.md").text


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="timm model"):
        save_pretrained(torch.nn.Linear(2, 2), tmp_path / "x", tag="mls_x")
    with pytest.raises(ValueError, match="tag"):
        save_pretrained(TimmBackbone("test_resnet"), tmp_path / "x", tag="")


def test_the_pool_size_is_measured_where_the_model_sits():
    # after a GPU run the live backbone is on the GPU; the meta device stands in for it
    # (main 8d5e37d fed it a CPU tensor: every GPU pretraining run crashed at its export)
    from scene_ssl.export import _feature_map_size

    cpu = TimmBackbone("test_resnet").model
    meta = TimmBackbone("test_resnet").model.to("meta")
    assert _feature_map_size(meta, 64) == _feature_map_size(cpu, 64) == (2, 2)
    vit_cpu, vit_meta = (TimmBackbone("test_vit", img_size=32).model for _ in range(2))
    assert _feature_map_size(vit_meta.to("meta"), 32) == _feature_map_size(vit_cpu, 32)
