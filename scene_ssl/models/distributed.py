"""The few collectives the methods need, as no-ops when torch.distributed is not running.

They read the default process group at call time (Accelerate, torchrun and
``accelerate.debug_launcher`` all initialise it); nothing assumes a rank.
"""
from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor

from ..processes import rank_and_world_size

__all__ = ["rank_and_world_size", "gather_no_grad", "gather_with_grad", "shared_permutation"]


@torch.no_grad()
def gather_no_grad(x: Tensor) -> Tensor:
    """Concatenate ``x`` (B, ...) from every process along dim 0, in rank order.

    Every process must pass the same shape.
    """
    _, world_size = rank_and_world_size()
    if world_size == 1:
        return x
    parts = [torch.empty_like(x) for _ in range(world_size)]
    dist.all_gather(parts, x.contiguous())
    return torch.cat(parts, dim=0)


class _GatherWithGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        rank, world_size = rank_and_world_size()
        ctx.rank, ctx.rows = rank, x.shape[0]
        parts = [torch.empty_like(x) for _ in range(world_size)]
        dist.all_gather(parts, x.contiguous())
        return torch.cat(parts, dim=0)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        # Every process holds a loss that reads all gathered rows: the gradient of our rows
        # is the sum over processes. all_reduce works on every backend (gloo has no
        # reduce_scatter); the tensors here are embeddings, so the extra traffic is small.
        grad = grad.contiguous()
        dist.all_reduce(grad)
        return grad[ctx.rank * ctx.rows : (ctx.rank + 1) * ctx.rows]


def gather_with_grad(x: Tensor) -> Tensor:
    """Like :func:`gather_no_grad`, but gradients flow back to every process's ``x``.

    The backward pass sums the gradients that all processes computed for our rows.
    """
    _, world_size = rank_and_world_size()
    if world_size == 1:
        return x
    return _GatherWithGrad.apply(x)


@torch.no_grad()
def shared_permutation(n: int, device: torch.device | str) -> Tensor:
    """A random permutation of ``range(n)``, drawn on rank 0 and identical on every process."""
    perm = torch.randperm(n, device=device)
    _, world_size = rank_and_world_size()
    if world_size > 1:
        dist.broadcast(perm, src=0)
    return perm
