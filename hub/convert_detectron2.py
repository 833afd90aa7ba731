"""Convert a ResNet backbone export to a Detectron2 checkpoint (.pkl), as MoCo and the BAM
authors provide for Mask R-CNN / Faster R-CNN fine-tuning.

    python hub/convert_detectron2.py outputs/mls_coco_r50 mls_r50.pkl
    python hub/convert_detectron2.py hf-hub:org/resnet50-mls-coco mls_r50.pkl

Use it in a Detectron2 config with ``MODEL.WEIGHTS mls_r50.pkl``, ``MODEL.PIXEL_MEAN
[123.675, 116.280, 103.530]``, ``MODEL.PIXEL_STD [58.395, 57.120, 57.375]``,
``INPUT.FORMAT RGB`` (torchvision-style weights, as for MoCo). Only plain-stem ResNets
(resnet18/34/50/101/152 and their timm variants with ``conv1``/``bn1``) map onto
Detectron2's ResNet.
"""
from __future__ import annotations

import argparse
import pickle
import re
from pathlib import Path

import torch

from scene_ssl.loading import load_backbone

__all__ = ["to_detectron2_names", "convert"]

_BLOCK = re.compile(r"^layer(\d)\.(\d+)\.(.*)$")


def _rename_tail(tail: str) -> str:
    tail = re.sub(r"^bn(\d)\.", r"conv\1.norm.", tail)
    tail = tail.replace("downsample.0.", "shortcut.").replace("downsample.1.", "shortcut.norm.")
    return tail


def to_detectron2_names(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """timm / torchvision ResNet keys -> Detectron2 ResNet keys (``fc.*`` dropped).

    Example:
        >>> sorted(to_detectron2_names({"conv1.weight": 0, "bn1.bias": 0, "layer1.0.bn2.running_mean": 0,
        ...                             "layer4.2.downsample.1.weight": 0, "fc.weight": 0}))
        ['res2.0.conv2.norm.running_mean', 'res5.2.shortcut.norm.weight', 'stem.conv1.norm.bias', 'stem.conv1.weight']
    """
    out = {}
    for key, value in state.items():
        if key.endswith("num_batches_tracked") or key.startswith("fc."):
            continue
        if key == "conv1.weight":
            new = "stem." + key
        elif key.startswith("bn1."):
            new = "stem.conv1.norm." + key[len("bn1."):]
        else:
            m = _BLOCK.match(key)
            if m is None:
                raise ValueError(f"{key!r} is not part of a plain-stem ResNet; only those convert to Detectron2")
            stage, block, tail = m.groups()
            new = f"res{int(stage) + 1}.{block}.{_rename_tail(tail)}"
        out[new] = value
    return out


def convert(source: str, output: str | Path) -> Path:
    backbone = load_backbone(source)
    state = {k: v.detach().cpu() for k, v in backbone.model.state_dict().items()}
    d2 = {k: v.numpy() for k, v in to_detectron2_names(state).items()}
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    with open(output, "wb") as f:
        pickle.dump({"model": d2, "__author__": "scene_ssl", "matching_heuristics": True}, f)
    return output


def main(argv: list[str] | None = None) -> Path:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("source", help="training output / export folder, local-dir:... or hf-hub:...")
    ap.add_argument("output", help="the .pkl to write")
    args = ap.parse_args(argv)
    out = convert(args.source, args.output)
    print(f"wrote {out}")
    return out


if __name__ == "__main__":
    main()
