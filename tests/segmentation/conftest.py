import pytest

from scene_ssl.data import make_scenes


@pytest.fixture(scope="session")
def seg_scenes(tmp_path_factory):
    """A small COCO-format scene set with instance masks (semantic maps through coco:)."""
    return make_scenes(tmp_path_factory.mktemp("seg") / "s", num_classes=4, num_train=16, num_val=6, image_size=(64, 48))


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SCENE_SSL_CACHE", str(tmp_path / "cache"))
