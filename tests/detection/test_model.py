import re

import pytest
import torch
from safetensors.torch import load_file

from scene_ssl.detection import build_detector, load_detection_set
from scene_ssl.export import save_pretrained
from scene_ssl.models import TimmBackbone

SMALL = dict(fpn_channels=16, anchor_scale=4.0, train_sizes=(64,), max_size=96, rois_per_image=16, proposals=(50, 50))


def _timm_name(feature_name: str) -> str:
    """features_only module names -> the full model's: ``model.`` wrappers, ``stages_0`` -> ``stages.0``."""
    return re.sub(r"_(\d+)\.", r".\1.", feature_name.removeprefix("model."))


@pytest.mark.parametrize("arch", ["test_resnet", "test_convnext", "test_vit"])
def test_the_detector_holds_exactly_the_exported_weights(arch, tmp_path):
    torch.manual_seed(0)
    backbone = TimmBackbone(arch)
    with torch.no_grad():  # weights no fresh model could have
        for p in backbone.parameters():
            p.add_(torch.randn_like(p))
    export = save_pretrained(backbone, tmp_path / "export", tag="mls_test")
    saved = load_file(str(export / "model.safetensors"))
    detector = build_detector(str(export), 3, norm="frozen", **SMALL)
    trunk = dict(detector.backbone.trunk.state_dict())
    assert trunk
    for name, tensor in trunk.items():
        if name.endswith(("running_mean", "running_var", "num_batches_tracked")) and name not in saved:
            continue
        assert torch.equal(tensor, saved[_timm_name(name)]), name


@pytest.mark.parametrize("arch", ["test_resnet", "test_convnext", "test_vit"])
@pytest.mark.parametrize("task", ["bbox", "segm"])
def test_every_architecture_trains_a_step(arch, task, det_scenes):
    from scene_ssl.detection import DetectionDataset, collate_detection

    data = load_detection_set(f"coco:{det_scenes}", "train")
    images, targets = collate_detection([DetectionDataset(data, train=True, masks=task == "segm")[i] for i in range(2)])
    torch.manual_seed(0)
    model = build_detector(f"random:{arch}", data.num_classes, task=task, norm="bn", **SMALL).train()
    losses = model(images, targets)
    assert {"loss_classifier", "loss_box_reg", "loss_objectness", "loss_rpn_box_reg"} <= set(losses)
    assert ("loss_mask" in losses) == (task == "segm")
    total = sum(losses.values())
    total.backward()
    trunk_grads = [p.grad for p in model.backbone.trunk.parameters() if p.requires_grad]
    assert torch.isfinite(total) and any(g is not None and g.abs().sum() > 0 for g in trunk_grads)
    model.eval()
    with torch.no_grad():
        out = model(images)
    assert len(out) == 2 and out[0]["boxes"].shape[1] == 4 and ("masks" in out[0]) == (task == "segm")


def test_frozen_norm_keeps_the_pretrained_statistics(det_scenes):
    model = build_detector("random:test_resnet", 4, norm="frozen", **SMALL)
    kinds = {type(m).__name__ for m in model.backbone.trunk.modules()}
    assert "FrozenBatchNorm2d" in kinds and "BatchNorm2d" not in kinds


@pytest.mark.parametrize("kwargs,match", [({"task": "keypoints"}, "task"), ({"norm": "gn"}, "norm")])
def test_bad_options_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        build_detector("random:test_resnet", 3, **kwargs)


def test_the_c4_detector_holds_exactly_the_exported_weights_and_trains_a_step(det_scenes, tmp_path):
    from scene_ssl.detection import DetectionDataset, collate_detection

    torch.manual_seed(0)
    backbone = TimmBackbone("resnet10t")
    with torch.no_grad():
        for p in backbone.parameters():
            p.add_(torch.randn_like(p))
    saved = load_file(str(save_pretrained(backbone, tmp_path / "export", tag="x") / "model.safetensors"))
    data = load_detection_set(f"coco:{det_scenes}", "train")
    for task in ("bbox", "segm"):
        detector = build_detector(str(tmp_path / "export"), data.num_classes, task=task, norm="bn", architecture="c4",
                                  **{k: v for k, v in SMALL.items() if k not in ("fpn_channels", "anchor_scale")})
        trunk = detector.backbone.trunk.state_dict()
        res5 = detector.roi_heads.box_head.res5.state_dict()
        assert trunk and res5 and not any(k.startswith("layer4") for k in trunk)  # the trunk stops at stride 16
        for name, tensor in trunk.items():
            assert torch.equal(tensor, saved[_timm_name(name)]), name
        for name, tensor in res5.items():
            assert torch.equal(tensor, saved[f"layer4.{name}"]), name  # the last stage is the RoI head
        assert isinstance(detector.roi_heads.box_head.norm, torch.nn.BatchNorm2d)  # MoCo's extra norm
        if task == "segm":  # the mask branch runs the same res5: its weights are listed once
            assert not any(".mask_head." in k for k in detector.state_dict())
        images, targets = collate_detection([DetectionDataset(data, train=True, masks=task == "segm")[i] for i in range(2)])
        losses = detector.train()(images, targets)
        assert ("loss_mask" in losses) == (task == "segm")
        sum(losses.values()).backward()
        assert detector.roi_heads.box_head.res5[0].conv1.weight.grad.abs().sum() > 0
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in detector.backbone.trunk.parameters())


def test_the_4conv1fc_box_head_trains_a_step(det_scenes):
    from torchvision.models.detection.faster_rcnn import FastRCNNConvFCHead, TwoMLPHead

    from scene_ssl.detection import DetectionDataset, collate_detection

    data = load_detection_set(f"coco:{det_scenes}", "train")
    images, targets = collate_detection([DetectionDataset(data, train=True, masks=True)[i] for i in range(2)])
    torch.manual_seed(0)
    four = build_detector("random:test_resnet", data.num_classes, task="segm", norm="bn", box_head="4conv1fc", **SMALL)
    assert isinstance(four.roi_heads.box_head, FastRCNNConvFCHead)
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in four.roi_heads.box_head.modules())
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in four.roi_heads.mask_head.modules())
    losses = four.train()(images, targets)
    sum(losses.values()).backward()
    conv = next(m for m in four.roi_heads.box_head.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.grad.abs().sum() > 0
    two = build_detector("random:test_resnet", data.num_classes, task="segm", norm="bn", box_head="2fc", **SMALL)
    assert isinstance(two.roi_heads.box_head, TwoMLPHead)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in two.roi_heads.mask_head.modules())  # Detectron2's standard


def test_c4_refuses_a_vit():
    with pytest.raises(ValueError, match="architecture c4 needs a CNN"):
        build_detector("random:test_vit", 3, architecture="c4")
