"""k-NN probe on frozen, L2-normalised backbone features (cosine similarity).

The recipe lives in the package (``scene_ssl.recipes.probe_knn``), so that an installed wheel runs it
too: ``accelerate launch -m scene_ssl.recipes.probe_knn``; ``--help`` tells the rest.
"""
from scene_ssl.recipes.probe_knn import main

if __name__ == "__main__":
    main()
