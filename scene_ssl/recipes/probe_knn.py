"""k-NN probe on frozen, L2-normalised backbone features (cosine similarity).

Single-label data: top-1 / top-5 accuracy of the similarity-weighted vote of the k nearest
training images. Multi-label data: mAP, CP, CR, CF1, OP, OR, OF1 of the weighted label vote.

    accelerate launch recipes/probe_knn.py --model outputs/mls_scenes --k 20
    accelerate launch recipes/probe_knn.py --model hf-hub:org/name --data folder:/data/flowers --image-size 224
"""
from __future__ import annotations

from scene_ssl.config import parse_recipe_config, user_errors
from scene_ssl.probe import KNNProbeConfig, run_knn_probe
from scene_ssl.recipes import config_path

DEFAULT_CONFIG = config_path("probe_knn_scenes.yaml")


def main(argv: list[str] | None = None) -> dict:
    with user_errors(KNNProbeConfig):  # a bad flag, spec or file: one line and exit status 2
        return run_knn_probe(parse_recipe_config(KNNProbeConfig, argv, DEFAULT_CONFIG, description=__doc__))


if __name__ == "__main__":
    main()
