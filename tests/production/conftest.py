import pytest

from scene_ssl.data import make_scenes


@pytest.fixture(scope="session")
def scenes(tmp_path_factory):
    """48 training images: with 2 processes x batch 4 each process gets 6 batches per epoch."""
    return make_scenes(tmp_path_factory.mktemp("production") / "s", num_classes=4, num_train=48, num_val=16,
                       image_size=(48, 36))
