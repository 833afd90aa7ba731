import pytest
import timm
import torch

from scene_ssl.models import TimmBackbone


@pytest.mark.parametrize("name", ["test_resnet", "test_convnext", "test_vit"])
def test_features_and_num_features(name):
    backbone = TimmBackbone(name).eval()
    reference = timm.create_model(name, num_classes=0).eval()
    reference.load_state_dict(backbone.model.state_dict())
    assert backbone.num_features == reference.num_features
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        pooled = backbone(x)
        assert pooled.shape == (2, backbone.num_features)
        assert torch.allclose(pooled, reference(x), atol=1e-5)
        fmap = backbone.feature_map(x)
        both = backbone.pooled_and_map(x)  # one trunk pass, the same two outputs
    assert fmap.ndim == 4 and fmap.shape[:2] == (2, backbone.num_features)
    assert torch.equal(both[0], pooled) and torch.equal(both[1], fmap)


def test_vit_feature_map_is_patch_tokens_on_grid():
    backbone = TimmBackbone("test_vit").eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        tokens = backbone.forward_features(x)
        fmap = backbone.feature_map(x)
    prefix = backbone.model.num_prefix_tokens
    h, w = fmap.shape[2:]
    assert h * w == tokens.shape[1] - prefix
    # token at grid position (r, c) is patch r*w + c
    assert torch.equal(fmap[0, :, 1, 2], tokens[0, prefix + 1 * w + 2])


def test_state_dict_is_the_timm_models():
    backbone = TimmBackbone("resnet10t")
    assert set(backbone.model.state_dict()) == set(timm.create_model("resnet10t", num_classes=0).state_dict())
    assert not any(k.startswith("fc.") for k in backbone.model.state_dict())


def test_errors():
    with pytest.raises(ValueError, match="num_classes"):
        TimmBackbone("test_resnet", num_classes=10)
    with pytest.raises(ValueError, match="unknown timm model"):
        TimmBackbone("resnet_does_not_exist")
