"""Pretrain any registered method: ``--method NAME`` plus that method's flags.

The recipe lives in the package (``scene_ssl.recipes.pretrain``), so that an installed wheel runs it
too: ``accelerate launch -m scene_ssl.recipes.pretrain``; ``--help`` tells the rest.
"""
from scene_ssl.recipes.pretrain import main

if __name__ == "__main__":
    main()
