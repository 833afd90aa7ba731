"""Multi-label (GAMP) or single-label linear probe on a frozen backbone.

Defaults are the BAM authors' protocol: frozen backbone with BN in eval mode, pooling
0.5·(GAP + GMP), a linear head ~N(0, 0.01), BCE, SGD momentum 0.9, wd 0, lr 10·batch/256
cosine, 100 epochs, batch 64, 448 px. Features are cached once (eval transform) unless
``--cache-features false`` (then RandomResizedCrop + flip through the backbone every epoch).
Reports mAP, CP, CR, CF1, OP, OR, OF1 (and a top-3 variant; top-1/top-5 for single-label
data) into OUTPUT_DIR/metrics.json.

    accelerate launch recipes/probe_linear.py --model outputs/mls_scenes                  # after the main job
    accelerate launch recipes/probe_linear.py --model hf-hub:org/name --data coco:/data/coco
    accelerate launch recipes/probe_linear.py --model outputs/mls_scenes --pool avg       # classic probe
    accelerate launch --multi_gpu --num_processes 4 recipes/probe_linear.py --model ... --data ...
    accelerate launch recipes/probe_linear.py --model random:resnet50 --data ...          # baseline

``--model`` takes a training output folder, an export folder, local-dir:..., hf-hub:... or random:<arch>.
"""
from __future__ import annotations

from scene_ssl.config import parse_recipe_config, user_errors
from scene_ssl.probe import LinearProbeConfig, run_linear_probe
from scene_ssl.recipes import config_path

DEFAULT_CONFIG = config_path("probe_linear_scenes.yaml")


def main(argv: list[str] | None = None) -> dict:
    with user_errors(LinearProbeConfig):  # a bad flag, spec or file: one line and exit status 2
        return run_linear_probe(parse_recipe_config(LinearProbeConfig, argv, DEFAULT_CONFIG, description=__doc__))


if __name__ == "__main__":
    main()
