import pytest

from scene_ssl.data import make_scenes


@pytest.fixture(scope="session")
def det_scenes(tmp_path_factory):
    """A small COCO-format scene set with boxes and masks."""
    return make_scenes(tmp_path_factory.mktemp("det") / "s", num_classes=4, num_train=24, num_val=8, image_size=(64, 48))


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SCENE_SSL_CACHE", str(tmp_path / "cache"))
