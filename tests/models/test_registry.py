"""The method registry is the only list of methods: a method registered here, in a test, runs
through the loop, the export and the card without any other file knowing it; exports name
the method that trained, whatever their tag."""
import dataclasses
import json

import pytest
import torch.nn.functional as F
from accelerate import Accelerator
from accelerate.state import AcceleratorState, GradientState
from huggingface_hub import ModelCard
from torch import nn

from scene_ssl.config import load_config, option
from scene_ssl.data import make_scenes
from scene_ssl.export import export_run
from scene_ssl.models import (BAMConfig, Method, MethodSpec, PretrainConfig, StepContext, TimmBackbone, get_method,
                              method_names, method_of, register_method)
from scene_ssl.models import registry
from scene_ssl.train import pretrain
from scene_ssl.transforms import MoCoV2Transform


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    return make_scenes(tmp_path_factory.mktemp("scenes") / "s", num_classes=3, num_train=16, num_val=4, image_size=(40, 30))


@pytest.fixture
def own_table(monkeypatch):
    """A private copy of the table: what a test registers is gone afterwards."""
    monkeypatch.setattr(registry, "_METHODS", dict(registry._METHODS))


class ToyMethod(nn.Module):
    """The smallest method the contract allows: a backbone, a linear head, cosine between two views."""

    num_views = 2

    def __init__(self, backbone: str, dim: int) -> None:
        super().__init__()
        self.encoder = TimmBackbone(backbone)
        self.head = nn.Linear(self.encoder.num_features, dim)
        self.seen_steps: list[StepContext] = []

    def begin_step(self, at: StepContext) -> None:
        self.seen_steps.append(at)

    def forward(self, batch):
        z1, z2 = (self.head(self.encoder(v)) for v in batch["views"])
        loss = -F.cosine_similarity(z1, z2.detach()).mean()
        return {"loss": loss, "loss_toy": loss.detach()}


@dataclasses.dataclass
class ToyConfig(PretrainConfig):
    output_dir: str = option("outputs/toy", "where the outputs go")
    toy_dim: int = option(8, "size of the toy head")

    def build_method(self) -> ToyMethod:
        return ToyMethod(self.backbone, self.toy_dim)

    def build_views(self) -> MoCoV2Transform:
        return MoCoV2Transform(size=self.image_size)


TOY = MethodSpec(name="toyssl", display_name="Toy SSL", module=ToyMethod, config=ToyConfig, paper="Nobody, Toys, 2026",
                 quick_config="toy_scenes.yaml", citation="@misc{toy2026, title = {A Toy Method}, year = {2026}}")


def _run(cfg):
    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()
    return pretrain(cfg, accelerator=Accelerator(cpu=True))


def _small(scenes, tmp_path, cls, **kw):
    base = dict(data=f"coco:{scenes}", backbone="test_resnet", image_size=16, batch_size=8, num_workers=0, max_steps=3,
                log_every=1, save_every=0, output_dir=str(tmp_path), channels_last=False, probe_data=None)
    return load_config(cls, None, {**base, **kw})


def test_the_builtin_methods_are_registered_with_their_own_module_and_config():
    assert method_names()[:4] == ["mocov2", "mls", "simsiam", "bam"]
    for name in method_names():
        spec = get_method(name)
        cfg = spec.config()
        assert issubclass(spec.config, PretrainConfig) and spec.citation.startswith("@")
        method = dataclasses.replace(cfg, backbone="test_resnet").build_method()
        assert isinstance(method, Method) and method_of(method) is spec  # the paper defaults build that very method
    with pytest.raises(ValueError, match="unknown method 'byol'; registered: mocov2, mls"):
        get_method("byol")


def test_a_registered_toy_method_trains_exports_and_is_named_in_its_card(own_table, scenes, tmp_path):
    register_method(TOY)
    assert method_names()[-1] == "toyssl" and register_method(TOY) is TOY  # registering again changes nothing
    with pytest.raises(ValueError, match="already registered"):
        register_method(dataclasses.replace(TOY, display_name="Other"))
    cfg = _small(scenes, tmp_path, ToyConfig, max_steps=3)
    run = _run(cfg)
    assert run.method == "toyssl" and run.finished and "loss_toy" in run.losses
    # the loop called the contract's hook before each of the 3 steps, the first included
    assert [(s.step, s.total_steps) for s in run.model.seen_steps] == [(0, 3), (1, 3), (2, 3)]
    state = json.loads((run.checkpoint / "trainer_state.json").read_text())
    assert state["method"] == "toyssl"
    folder = export_run(run, cfg)
    card = ModelCard.load(folder / "README.md")
    assert "toyssl" in card.data.tags and card.data.model_name == "test_resnet-toyssl-coco"
    assert "Toy SSL" in card.text and "A Toy Method" in card.text and "Zhu" not in card.text


@pytest.mark.parametrize("overrides,method,display,cited", [
    ({"blocks": 1, "ia_weight": 0.0}, "simsiam", "SimSiam", "Exploring Simple Siamese"),
    ({"blocks": 4}, "bam", "BAM + IA-CLoss", "Chen, Jiale"),
])
def test_an_export_with_its_own_tag_names_the_method_that_trained(scenes, tmp_path, overrides, method, display, cited):
    cfg = _small(scenes, tmp_path, BAMConfig, export_tag="my-run", proj_dim=16, proj_hidden_dim=16, pred_hidden_dim=8,
                 batch_size=4, max_steps=2, **overrides)
    run = _run(cfg)
    assert run.method == method
    folder = export_run(run, cfg)
    card = ModelCard.load(folder / "README.md")
    meta = json.loads((folder / "scene_ssl.json").read_text())
    assert meta["method"] == method and meta["name"] == meta["tag"] == "my-run"
    assert card.data.model_name == "my-run" and method in card.data.tags and "mls" not in card.data.tags
    assert f"**{display}**" in card.text and cited in card.text
    assert "MLS" not in card.text and "Zhu" not in card.text  # the old guess from the tag said MLS


def test_an_unregistered_method_is_named_by_its_class_without_a_citation(scenes, tmp_path):
    run = _run(_small(scenes, tmp_path, ToyConfig, max_steps=1))
    assert run.method == "toymethod"
    folder = export_run(run, _small(scenes, tmp_path, ToyConfig, max_steps=1))
    meta = json.loads((folder / "scene_ssl.json").read_text())
    assert meta["method"] == "toymethod" and meta["citation"] is None
    assert "## Citation" not in (folder / "README.md").read_text()


def test_views_and_method_must_agree(scenes, tmp_path):
    class Mismatched(ToyConfig):
        def build_views(self):
            from scene_ssl.transforms import BlockwiseTransform, bam_view_transforms

            return BlockwiseTransform(*bam_view_transforms(16))  # 8 views for a 2-view method

    with pytest.raises(ValueError, match="makes 8 views per image but ToyMethod expects 2"):
        _run(_small(scenes, tmp_path, Mismatched))
