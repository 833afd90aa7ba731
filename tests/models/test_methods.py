import pytest
import torch
import torch.nn.functional as F

from scene_ssl.losses import ImageAwareContrastiveLoss
from scene_ssl.models import BAM, MLS, MoCoV2, SimSiam, gather_with_grad

from ..distributed_helpers import run_distributed

TINY = "test_resnet"
SMALL_MOCO = dict(dim=16, hidden_dim=32, queue_size=64)
SMALL_SIAM = dict(proj_dim=16, proj_hidden_dim=32, pred_hidden_dim=8)


def views(n, b=4, size=32):
    return [torch.randn(b, 3, size, size) for _ in range(n)]


def make(method, **kw):
    if method == "moco":
        return MoCoV2(TINY, **SMALL_MOCO, **kw)
    if method == "mls":
        return MLS(TINY, **SMALL_MOCO, topk=5, **kw)
    if method == "simsiam":
        return SimSiam(TINY, **SMALL_SIAM, **kw)
    return BAM(TINY, blocks=2, **SMALL_SIAM, **kw)


@pytest.mark.parametrize("method", ["moco", "mls"])
def test_momentum_methods_gradient_routing(method):
    model = make(method, momentum=0.9).train()
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    model({"views": views(2)})["loss"].backward()
    opt.step()  # the momentum encoder starts as an exact copy: move the online one first
    opt.zero_grad()
    momentum_before = [p.clone() for p in model.momentum_encoder.parameters()]
    queues_before = {k: v.clone() for k, v in model.state_dict().items() if k.startswith("queue")}
    out = model({"views": views(2)})
    out["loss"].backward()
    for name, module in [("encoder", model.encoder), ("projector", model.projector)]:
        grads = [p.grad for p in module.parameters()]
        assert all(g is not None for g in grads), f"some {name} parameter got no gradient"
        assert sum(g.abs().sum() for g in grads) > 0
    for p in list(model.momentum_encoder.parameters()) + list(model.momentum_projector.parameters()):
        assert not p.requires_grad and p.grad is None
    # the momentum encoder moved towards the online one, the queues received the keys
    assert any(not torch.equal(a, b) for a, b in zip(momentum_before, model.momentum_encoder.parameters()))
    for k, v in model.state_dict().items():
        if k.startswith("queue") and k.endswith("features"):
            assert not torch.equal(v, queues_before[k]) and not v.requires_grad


def test_mls_queues_hold_the_same_samples_in_the_same_order():
    model = MLS(TINY, **SMALL_MOCO, topk=5, momentum=1.0).train()
    x_q, x_k = views(2, b=6)
    model({"views": [x_q, x_k]})
    with torch.no_grad():  # m = 1: the momentum encoder did not change; BN in train mode sees the same batch
        g_k = model.momentum_encoder(x_k)
        z_k = model.momentum_projector(g_k)
    assert int(model.queue.ptr) == int(model.queue_g.ptr) == 6
    assert torch.allclose(model.queue_g.features[:6], F.normalize(g_k, dim=1), atol=1e-5)
    assert torch.allclose(model.queue.features[:6], F.normalize(z_k, dim=1), atol=1e-5)


def test_mls_loss_is_nce_plus_weighted_mls():
    model = MLS(TINY, **SMALL_MOCO, topk=5, mls_weight=0.5)
    out = model({"views": views(2)})
    assert out["loss"].item() == pytest.approx(out["loss_nce"].item() + 0.5 * out["loss_mls"].item(), rel=1e-6)


def _capture(model):
    """Record projector outputs z and predictor outputs p in call order."""
    seen = {"z": [], "p": []}
    model.projector.register_forward_hook(lambda m, i, o: seen["z"].append(o))
    model.predictor.register_forward_hook(lambda m, i, o: seen["p"].append(o))
    return seen


@pytest.mark.parametrize("method,detached", [("simsiam", True), ("bam", False)])
def test_stop_gradient(method, detached):
    model = make(method).train()
    assert model.stop_grad is detached
    seen = _capture(model)
    out = model({"views": views(model.num_views)})
    z1, p1 = seen["z"][0], seen["p"][0]
    dz1_total, dp1 = torch.autograd.grad(out["loss"], [z1, p1], retain_graph=True)
    (dz1_via_predictor,) = torch.autograd.grad(p1, z1, grad_outputs=dp1, retain_graph=True)
    # With stop-grad, z1 only receives gradient through the predictor branch p1 = h(z1).
    assert torch.allclose(dz1_total, dz1_via_predictor, atol=1e-7) is detached


def test_bam_default_stop_grad_follows_the_weight():
    assert BAM(TINY, **SMALL_SIAM).stop_grad is False
    assert BAM(TINY, **SMALL_SIAM, ia_weight=0).stop_grad is True
    assert BAM(TINY, **SMALL_SIAM, stop_grad=True).stop_grad is True


def test_bam_loss_is_sim_plus_weighted_ia():
    model = make("bam", ia_weight=4.0)
    out = model({"views": views(4)})
    assert out["loss"].item() == pytest.approx(out["loss_sim"].item() + 4 * out["loss_ia"].item(), rel=1e-6)


@pytest.mark.parametrize("method", ["moco", "mls", "simsiam", "bam"])
def test_a_few_steps_reduce_the_loss(method):
    torch.manual_seed(0)
    model = make(method).train()
    # On a fixed batch a queue soon fills with copies of each sample's own keys, which
    # changes the objective; holding the queues at their initial state keeps it fixed.
    initial_queues = {k: v.clone() for k, v in model.state_dict().items() if k.startswith("queue")}
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.05, momentum=0.9)
    base = torch.randn(8, 3, 32, 32)
    losses = []
    for _ in range(12):
        batch = [base + 0.05 * torch.randn_like(base) for _ in range(model.num_views)]
        out = model({"views": batch})
        assert torch.isfinite(out["loss"])
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        model.load_state_dict(initial_queues, strict=False)
        losses.append(out["loss"].item())
    assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3, losses


@pytest.mark.parametrize("method", ["moco", "mls", "simsiam", "bam"])
def test_bad_batches(method):
    model = make(method)
    with pytest.raises(ValueError, match="views"):
        model({"views": views(model.num_views + 1)})
    with pytest.raises(ValueError, match="uint8"):
        model({"views": [v.to(torch.uint8) for v in views(model.num_views)]})


@pytest.mark.parametrize("cls,kwargs,match", [
    (MLS, {"topk": 100, "queue_size": 64}, "topk"),
    (MLS, {"loss_form": "hinge"}, "loss_form"),
    (MLS, {"dictionary": "x"}, "dictionary"),
    (MLS, {"mls_weight": -1}, "mls_weight"),
    (MoCoV2, {"momentum": 1.5}, "momentum"),
    (MoCoV2, {"queue_size": 0}, "queue_size"),
    (BAM, {"blocks": 0}, "blocks"),
    (BAM, {"ia_weight": -2}, "ia_weight"),
    (BAM, {"ia_form": "x"}, "form"),
])
def test_bad_hyperparameters_fail_at_construction(cls, kwargs, match):
    with pytest.raises(ValueError, match=match):
        cls(TINY, **kwargs)


@pytest.mark.parametrize("source", ["both", "g", "z"])
@pytest.mark.parametrize("form", ["bce", "bce_pos", "knn_softmax"])
def test_mls_ablation_options_run(source, form):
    out = MLS(TINY, **SMALL_MOCO, topk=5, dictionary=source, loss_form=form)({"views": views(2)})
    assert torch.isfinite(out["loss"]) and out["loss_mls"] > 0


@pytest.mark.parametrize("dictionary", ["both", "g", "z"])
def test_mls_dictionary_variants_are_table_7s(dictionary):
    """``both``: labels from Q_g, logits from Q_z; ``g`` / ``z``: labels and logits from one queue."""
    from scene_ssl.losses.functional import mls_bce, mls_pseudo_labels

    torch.manual_seed(0)
    model = MLS(TINY, **SMALL_MOCO, topk=5, dictionary=dictionary).train()
    Qg, Qz = model.queue_g.features.clone(), model.queue.features.clone()
    x_q, x_k = views(2, b=6)
    out = model({"views": [x_q, x_k]})
    with torch.no_grad():
        g = model.encoder(x_q)  # the same batch in train-mode BN: the same features as in the forward
        z = model.projector(g)
    label_q, label_Q = (z, Qz) if dictionary == "z" else (g, Qg)
    logit_q, logit_Q = {"both": (z, Qz), "g": (g, Qg), "z": (z, Qz)}[dictionary]
    expected = mls_bce(logit_q, logit_Q, mls_pseudo_labels(label_q, label_Q, 5), 0.2)
    assert float(out["loss_mls"]) == pytest.approx(float(expected), rel=1e-5)


def test_mls_inactive_trains_infonce_alone_and_still_reports_the_bce():
    model = MLS(TINY, **SMALL_MOCO, topk=5, mls_weight=0.5)
    model.mls_active = False
    out = model({"views": views(2)})
    assert float(out["loss"].detach()) == pytest.approx(float(out["loss_nce"])) and float(out["loss_mls"]) > 0


def test_bn_splits_give_each_group_its_own_statistics_and_keys_back_in_order():
    torch.manual_seed(0)
    model = MoCoV2(TINY, **SMALL_MOCO, momentum=1.0, bn_splits=2).train()
    x = torch.randn(8, 3, 32, 32)
    g_q = model._embed(x, momentum=False)["g"]
    with torch.no_grad():
        naive = torch.cat([model.encoder(x[:4]), model.encoder(x[4:])])
        whole = model.encoder(x)
    assert torch.allclose(g_q, naive, atol=1e-5) and not torch.allclose(g_q, whole, atol=1e-3)
    model.momentum_encoder.eval()  # eval BN: keys no longer depend on their group, so the unshuffle shows
    keys = model._keys(x)
    g_k, z_k = keys["g"], keys["z"]
    with torch.no_grad():
        ref = model.momentum_encoder(x)
    assert torch.allclose(g_k, ref, atol=1e-5) and torch.allclose(z_k, model.momentum_projector(ref), atol=1e-5)
    with pytest.raises(ValueError, match="bn_splits"):
        MoCoV2(TINY, **SMALL_MOCO, bn_splits=4)({"views": views(2, b=6)})


# -- two processes ----------------------------------------------------------------------

def _bam_pairs_stay_aligned(rank, world_size):
    torch.manual_seed(0)
    model = BAM(TINY, blocks=4, **SMALL_SIAM)
    b = 3
    # pair (block k, image i of this rank) is encoded as 10·global_image + k in every pixel
    x1 = torch.stack([torch.full((3, 2, 2), 10.0 * (rank * b + i) + k) for k in range(4) for i in range(b)])
    x2 = x1 + 0.5
    ids = (torch.arange(b) + rank * b).repeat(4)
    s1, s2, sid = model._shuffle_pairs(x1, x2, ids)
    assert torch.equal(s2 - s1, torch.full_like(s1, 0.5)), "view 1 and view 2 were shuffled differently"
    assert torch.equal(sid, (s1[:, 0, 0, 0] // 10).long()), "image ids do not follow their pairs"
    everything = [torch.empty_like(s1[:, 0, 0, 0]) for _ in range(world_size)]
    torch.distributed.all_gather(everything, s1[:, 0, 0, 0].contiguous())
    values = torch.cat(everything)
    expected = torch.tensor([10.0 * i + k for k in range(4) for i in range(world_size * b)])
    assert torch.equal(values.sort().values, expected.sort().values), "shuffle lost or duplicated pairs"
    assert not torch.equal(values, expected), "pairs were not shuffled"


def test_bam_shuffle_keeps_pairs_aligned_across_processes():
    run_distributed(_bam_pairs_stay_aligned)


def _ia_gradient_across_processes(rank, world_size):
    torch.manual_seed(0)
    full = torch.randn(8 * world_size, 5, dtype=torch.float64)
    ids = torch.arange(4 * world_size).repeat(2)
    mine = full[rank * 8 : (rank + 1) * 8].clone().requires_grad_(True)
    loss_fn = ImageAwareContrastiveLoss()
    loss = loss_fn(gather_with_grad(mine), ids)
    loss.backward()
    ref = full.clone().requires_grad_(True)
    ref_loss = loss_fn(ref, ids)
    ref_loss.backward()
    assert torch.allclose(loss, ref_loss)
    # every process holds the whole loss; DDP averages over processes, so each one's
    # gradient is world_size times its share of the single-process gradient
    assert torch.allclose(mine.grad, world_size * ref.grad[rank * 8 : (rank + 1) * 8])


def test_gather_with_grad_gives_the_single_process_gradient():
    run_distributed(_ia_gradient_across_processes)


def _moco_shuffle_bn_unshuffles(rank, world_size):
    torch.manual_seed(0)
    model = MoCoV2(TINY, **SMALL_MOCO, momentum=1.0).train()
    # eval-mode BN: keys no longer depend on which samples share a process, so the
    # unshuffled keys must equal the keys computed locally, row for row
    model.momentum_encoder.eval()
    torch.manual_seed(1 + rank)
    x_k = torch.randn(4, 3, 32, 32)
    keys = model._keys(x_k)
    g, z = keys["g"], keys["z"]
    with torch.no_grad():
        g_ref = model.momentum_encoder(x_k)
    assert torch.allclose(g, g_ref, atol=1e-5) and torch.allclose(z, model.momentum_projector(g_ref), atol=1e-5)


def test_moco_shuffle_bn_returns_each_process_its_own_keys():
    run_distributed(_moco_shuffle_bn_unshuffles)


def _queues_stay_in_sync_without_ddp_broadcasting_them(rank, world_size, name):
    from torch.nn.parallel import DistributedDataParallel

    from scene_ssl.models import DenseCL

    torch.manual_seed(0)  # the same initial weights and queues on both processes
    model = DenseCL(TINY, dim=8, hidden_dim=16, queue_size=64) if name == "densecl" else make(name)
    ddp = DistributedDataParallel(model.train(), broadcast_buffers=False)  # as the loop's accelerator builds it
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    torch.manual_seed(10 + rank)  # each process its own images
    for _ in range(3):
        ddp({"views": views(2, size=64 if name == "densecl" else 32)})["loss"].backward()
        opt.step()
        opt.zero_grad()
        for key, buffer in model.named_buffers():
            if "queue" in key:
                both = [torch.empty_like(buffer) for _ in range(world_size)]
                torch.distributed.all_gather(both, buffer)
                assert torch.equal(both[0], both[1]), f"{key} differs between the processes"


@pytest.mark.parametrize("name", ["moco", "mls", "densecl"])
def test_queues_stay_identical_across_processes_without_buffer_broadcasts(name):
    # every process enqueues the same gathered keys: DDP need not re-send the queues each forward
    run_distributed(_queues_stay_in_sync_without_ddp_broadcasting_them, name)


def test_the_training_accelerator_does_not_broadcast_buffers(tmp_path):
    from accelerate.state import AcceleratorState, GradientState

    from scene_ssl.models import MLSConfig
    from scene_ssl.train import make_accelerator

    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()
    accelerator = make_accelerator(MLSConfig(output_dir=str(tmp_path)))
    assert accelerator.ddp_handler is not None and accelerator.ddp_handler.broadcast_buffers is False  # main 8d5e37d: None (DDP's default True)
