"""MLS pretraining (Multi-Label Self-supervised learning, Zhu, Fu & Wu, ICCV 2023).

The recipe lives in the package (``scene_ssl.recipes.pretrain_mls``), so that an installed wheel runs it
too: ``accelerate launch -m scene_ssl.recipes.pretrain_mls``; ``--help`` tells the rest.
"""
from scene_ssl.recipes.pretrain_mls import main

if __name__ == "__main__":
    main()
