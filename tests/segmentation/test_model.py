"""The segmentation models: mmseg's dilated ResNet layout, the heads, a training step on a CNN and a ViT."""
import pytest
import torch

from scene_ssl.segmentation.model import FCNHead, PSPHead, build_segmenter, segmentation_trunk
from scene_ssl.segmentation.train import segmentation_loss


def mmseg_resnet50_convs(strides, dilations, contract_dilation=True):
    """{conv name: (stride, dilation, padding)} of mmseg's ResNet-50 (style pytorch), written from
    its ResLayer / Bottleneck rules: the stride on the 3x3 conv, padding = dilation, and with
    contract_dilation the first block of a dilated stage at half the dilation."""
    convs = {"conv1": (2, 1, 3)}
    for stage, (blocks, stride, dilation) in enumerate(zip((3, 4, 6, 3), strides, dilations), start=1):
        for block in range(blocks):
            d = dilation // 2 if contract_dilation and dilation > 1 and block == 0 else dilation
            s = stride if block == 0 else 1
            convs[f"layer{stage}.{block}.conv1"] = (1, 1, 0)
            convs[f"layer{stage}.{block}.conv2"] = (s, d, d)
            convs[f"layer{stage}.{block}.conv3"] = (1, 1, 0)
            if block == 0:
                convs[f"layer{stage}.0.downsample.0"] = (s, 1, 0)
    return convs


@pytest.mark.parametrize("output_stride, strides, dilations", [
    (8, (1, 2, 1, 1), (1, 1, 2, 4)),  # R50-D8 (mmseg's fcn_r50-d8 / pspnet_r50-d8)
    (16, (1, 2, 2, 1), (1, 1, 1, 2)),  # R50-D16 (MoCo's fcn_d6_r50-d16)
])
def test_the_dilated_resnet50_is_mmsegs_contract_dilation_layout(output_stride, strides, dilations):
    trunk, _, _ = segmentation_trunk("random:resnet50", output_stride)
    got = {name: (m.stride[0], m.dilation[0], m.padding[0]) for name, m in trunk.named_modules()
           if isinstance(m, torch.nn.Conv2d)}
    assert got == mmseg_resnet50_convs(strides, dilations)
    maps = trunk(torch.zeros(1, 3, 64, 64))
    assert [tuple(m.shape[1:]) for m in maps] == [(1024, 64 // min(16, output_stride), 64 // min(16, output_stride)),
                                                  (2048, 64 // output_stride, 64 // output_stride)]


def test_fcn_and_psp_heads_have_mmsegs_shapes():
    fcn = FCNHead(32, 16, 5, num_convs=2, concat_input=True)
    assert [m.in_channels for m in fcn.modules() if isinstance(m, torch.nn.Conv2d)] == [32, 16, 48, 16]
    d6 = FCNHead(32, 16, 5, num_convs=2, dilation=6, concat_input=False, dropout=0.0)
    assert [m.dilation[0] for m in d6.modules() if isinstance(m, torch.nn.Conv2d)] == [6, 6, 1]
    psp = PSPHead(32, 8, 5, pool_scales=(1, 2, 3, 6))
    assert psp.bottleneck[0].in_channels == 32 + 4 * 8
    x = torch.randn(2, 32, 9, 11)
    assert fcn(x).shape == d6(x).shape == psp(x).shape == (2, 5, 9, 11)


@pytest.mark.parametrize("source, stride", [("random:test_resnet", 8), ("random:test_vit", 16)])
def test_a_cnn_and_a_vit_train_a_step(source, stride):
    torch.manual_seed(0)
    model, _ = build_segmenter(source, 4, channels=16, aux_channels=8, dropout=0.0)
    image, label = torch.randn(2, 3, 50, 70), torch.randint(0, 4, (2, 50, 70))  # not a multiple of 16
    label[:, :4] = 255
    seen = []
    model.trunk.register_forward_pre_hook(lambda module, args: seen.append(tuple(args[0].shape[-2:])))
    out = model(image)
    # a ViT sees the image resized to a multiple of its patch (its map then covers all of it); a CNN as it is
    assert seen == [(64, 80) if stride == 16 else (50, 70)]
    assert out["seg"].shape[-2:] == (-(-50 // stride), -(-70 // stride)) and "aux" in out
    loss = segmentation_loss(out["seg"], label) + 0.4 * segmentation_loss(out["aux"], label)
    loss.backward()
    first = next(p for p in model.trunk.parameters())
    assert first.grad is not None and first.grad.abs().sum() > 0  # the backbone is fine-tuned
    assert model.decode.classifier.conv_seg.weight.grad.abs().sum() > 0 and model.aux.classifier.conv_seg.weight.grad.abs().sum() > 0
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    optimizer.step()
    model.eval()
    assert "aux" not in model(image) and model.logits(image).shape == (2, 4, 50, 70)


def test_the_loss_is_mmsegs_mean_over_all_pixels():
    logits = torch.randn(1, 3, 4, 4)
    label = torch.randint(0, 3, (1, 4, 4))
    label[0, :2] = 255  # half ignored
    full = torch.nn.functional.cross_entropy(logits, label, ignore_index=255)  # mean over the labelled pixels
    assert segmentation_loss(logits, label) == pytest.approx(float(full) / 2, rel=1e-5)
