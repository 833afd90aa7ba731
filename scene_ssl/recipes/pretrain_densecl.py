"""DenseCL pretraining (Dense Contrastive Learning, Wang et al., CVPR 2021): MoCo v2 plus a
dense contrastive loss between matched locations of the two views' last feature maps, the
scene-SSL baseline both seed papers compare with (MLS Table 1, BAM Table 3).

With no arguments it runs the embedded quick job (configs/densecl_scenes.yaml).

    accelerate launch recipes/pretrain_densecl.py
    accelerate launch --multi_gpu --num_processes 8 --mixed_precision bf16 recipes/pretrain_densecl.py \\
        --config recipes/configs/densecl_coco_r50.yaml --data coco:/data/coco
    accelerate launch recipes/pretrain_densecl.py --dense-weight 0 ...     # the global branch alone (MoCo v2)
"""
from __future__ import annotations


from scene_ssl.recipes import CONFIGS
from scene_ssl.recipe import run_pretraining
from scene_ssl.train import PretrainResult


def main(argv: list[str] | None = None) -> PretrainResult:
    return run_pretraining("densecl", argv, CONFIGS, description=__doc__)


if __name__ == "__main__":
    main()
