"""``--compile`` through the real loop, on the CPU's inductor: the trunks compile, the method's
own Python (queues, EMA with a momentum that changes every step, warm-up flags, diagnostics)
stays eager, and the loss equals eager's."""
import pytest
import torch

from scene_ssl.models import MoCoV2Config, MLSConfig

from scene_ssl.config import load_config

from .test_loop import run


def cfg_of(cls, tiny_scenes, out, **kw):
    base = dict(data=f"coco:{tiny_scenes}", backbone="test_resnet", image_size=24, num_workers=0, base_lr=0.05,
                queue_size=32, dim=16, hidden_dim=32, ema_momentum=0.9, output_dir=str(out), channels_last=False)
    if cls is MLSConfig:
        base.update(topk=4, mls_warmup_epochs=0.34)  # the BCE switches on during the run
    return load_config(cls, None, {**base, **kw})


@pytest.mark.parametrize("cls", [MoCoV2Config, MLSConfig], ids=["mocov2", "mls"])
def test_compiled_trunks_give_eager_losses_and_do_not_recompile_every_step(tiny_scenes, tmp_path, cls):
    from torch._dynamo.utils import counters

    kw = dict(max_steps=4, batch_size=8, ema_schedule="cosine", log_every=1, save_every=0, export=False)
    eager = run(cfg_of(cls, tiny_scenes, tmp_path / "eager", **kw))
    frames_before = counters["stats"]["unique_graphs"]
    compiled = run(cfg_of(cls, tiny_scenes, tmp_path / "compiled", compile=True, **kw))
    assert compiled.model.encoder.compiled and compiled.model.momentum_encoder.compiled
    first = lambda r: [__import__("json").loads(l) for l in (r.output_dir / "train_log.jsonl").read_text().splitlines()][0]  # noqa: E731
    assert first(compiled)["loss"] == pytest.approx(first(eager)["loss"], rel=1e-4)
    assert compiled.losses["loss"] == pytest.approx(eager.losses["loss"], rel=1e-2)
    # the trunk's graphs: forward with gradient (queries) and without (keys); never one per step
    assert counters["stats"]["unique_graphs"] - frames_before <= 4
    # the weights are the module's own: the state_dict keys do not change
    assert compiled.model.state_dict().keys() == eager.model.state_dict().keys()
    for k, v in eager.model.state_dict().items():
        if v.is_floating_point() and "queue" not in k:
            torch.testing.assert_close(compiled.model.state_dict()[k], v, rtol=1e-2, atol=1e-3)
