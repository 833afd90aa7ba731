"""DenseCL: the dense loss against a naive per-location reference, the correspondence,
aligned queues (wrap-around, two processes, checkpoints), ViTs, gradient routing."""
import math

import pytest
import torch
import torch.nn.functional as F

from scene_ssl.models import DenseCL, get_method, method_of

from ..distributed_helpers import run_distributed

SMALL = dict(dim=8, hidden_dim=16, queue_size=24)


def views(b=3, size=64):
    return [torch.randn(b, 3, size, size), torch.randn(b, 3, size, size)]


def test_dense_loss_equals_a_naive_per_location_reference():
    torch.manual_seed(0)
    model = DenseCL("test_resnet", **SMALL, momentum=1.0, temperature=0.2).train()  # m = 1: keys see the init weights
    queue = model.queue_dense.features.clone()
    x_q, x_k = views(b=3)
    out = model({"views": [x_q, x_k]})
    with torch.no_grad():  # the same batches through the same train-mode BN: the forward's features
        pooled_q, fmap_q = model.encoder.pooled_and_map(x_q)
        pooled_k, fmap_k = model.momentum_encoder.pooled_and_map(x_k)
        grid_q, grid_k = model.dense_projector(fmap_q), model.momentum_dense_projector(fmap_k)
    b, _, h, w = fmap_q.shape
    terms = []
    for i in range(b):
        for r in range(h):
            for c in range(w):
                fq = F.normalize(fmap_q[i, :, r, c], dim=0)
                cos = [(fq @ F.normalize(fmap_k[i, :, rr, cc], dim=0)).item() for rr in range(h) for cc in range(w)]
                best = max(range(len(cos)), key=cos.__getitem__)  # the most similar key location
                qv = F.normalize(grid_q[i, :, r, c], dim=0)
                kv = F.normalize(grid_k[i, :, best // w, best % w], dim=0)
                logits = torch.cat([(qv @ kv).view(1), F.normalize(queue, dim=1) @ qv]) / 0.2
                terms.append(-torch.log_softmax(logits, dim=0)[0])
    assert h * w > 1 and float(out["loss_dense"]) == pytest.approx(float(torch.stack(terms).mean()), rel=1e-4)
    global_nce = float(out["loss_nce"])
    assert float(out["loss"].detach()) == pytest.approx(0.5 * global_nce + 0.5 * float(out["loss_dense"]), rel=1e-5)


@pytest.mark.parametrize("dense_weight", [0.0, 0.5, 1.0])
def test_gradients_reach_the_online_branches_each_loss_its_own(dense_weight):
    model = DenseCL("test_resnet", **SMALL, momentum=0.9, dense_weight=dense_weight).train()
    model({"views": views()})["loss"].backward()

    def grad_sum(module):
        assert all(p.grad is not None for p in module.parameters())
        return sum(float(p.grad.abs().sum()) for p in module.parameters())

    assert grad_sum(model.encoder) > 0  # both losses train the backbone
    assert (grad_sum(model.projector) > 0) == (dense_weight < 1)  # the global head only through L_global
    assert (grad_sum(model.dense_projector) > 0) == (dense_weight > 0)  # the dense head only through L_dense
    for module in (model.momentum_encoder, model.momentum_projector, model.momentum_dense_projector):
        assert all(not p.requires_grad and p.grad is None for p in module.parameters())
    assert not model.queue_dense.features.requires_grad


def test_queues_stay_aligned_through_wrap_around_and_a_checkpoint_round_trip():
    torch.manual_seed(0)
    model = DenseCL("test_resnet", **SMALL).train()
    for step in range(7):  # 7 batches of 5 into 24 rows: wraps around once
        model({"views": views(b=5, size=32), "index": torch.arange(5) + 5 * step})
    q, qd = model.queue, model.queue_dense
    assert int(q.ptr) == int(qd.ptr) == 35 % 24
    assert torch.equal(q.index, qd.index) and set(q.index.tolist()) == set(range(11, 35))
    clone = DenseCL("test_resnet", **SMALL)
    clone.load_state_dict(model.state_dict())
    for name, buffer in model.state_dict().items():
        if name.startswith("queue"):
            assert torch.equal(buffer, clone.state_dict()[name]), name
    out_a = model({"views": (v := views(b=5, size=32)), "index": torch.arange(5)})
    out_b = clone({"views": v, "index": torch.arange(5)})
    assert torch.allclose(out_a["loss"], out_b["loss"]) and torch.equal(model.queue_dense.features, clone.queue_dense.features)


def _two_processes(rank, world_size):
    torch.manual_seed(0)
    model = DenseCL("test_resnet", **SMALL).train()  # the same init on both ranks
    torch.manual_seed(1 + rank)
    for step in range(3):
        model({"views": views(b=4, size=32), "index": torch.arange(4) + 4 * rank + 8 * step})
    # both ranks enqueued both ranks' keys, rank 0's rows first, in both queues alike
    assert int(model.queue.ptr) == int(model.queue_dense.ptr) == 3 * 8 % 24
    assert torch.equal(model.queue.index, model.queue_dense.index)
    assert model.queue_dense.index[:8].tolist() == list(range(8))
    gathered = [torch.empty_like(model.queue_dense.features) for _ in range(world_size)]
    torch.distributed.all_gather(gathered, model.queue_dense.features)
    assert torch.equal(gathered[0], gathered[1]), "the ranks hold different dense queues"


def test_queues_stay_aligned_across_two_processes():
    run_distributed(_two_processes)


def test_a_vit_runs_a_densecl_step_with_patch_tokens_as_the_map():
    model = DenseCL("test_vit", **SMALL).train()
    out = model({"views": views(b=2, size=64)})
    assert math.isfinite(float(out["loss"].detach())) and math.isfinite(float(out["loss_dense"]))
    out["loss"].backward()
    assert model.dense_projector.net[0].weight.grad.abs().sum() > 0
    assert model.encoder.model.patch_embed.proj.weight.grad.abs().sum() > 0


def test_registered_with_the_official_coco_defaults():
    spec = get_method("densecl")
    cfg = spec.config()
    assert (cfg.epochs, cfg.base_lr, cfg.queue_size, cfg.dim, cfg.ema_momentum, cfg.temperature, cfg.dense_weight) == (
        800, 0.3, 65536, 128, 0.999, 0.2, 0.5)
    assert method_of(DenseCL("test_resnet", **SMALL)) is spec
    with pytest.raises(ValueError, match="dense_weight"):
        DenseCL("test_resnet", **SMALL, dense_weight=1.5)
