from collections import deque

import pytest
import torch

from scene_ssl.models import FeatureQueue

from ..distributed_helpers import run_distributed


@pytest.mark.parametrize("size,batches", [(7, [3, 3, 3, 3]), (8, [4, 4, 4]), (5, [2, 7, 1, 5, 6]), (4, [9])])
def test_wraps_around_like_a_ring_buffer(size, batches):
    q = FeatureQueue(size, 3)
    slots = [row.clone() for row in q.features]  # naive model: a list of slots and a write index
    ptr = 0
    for n in batches:
        x = torch.randn(n, 3)
        q.enqueue(x)
        for row in x:
            slots[ptr] = row
            ptr = (ptr + 1) % size
        assert torch.equal(q.features, torch.stack(slots))
        assert int(q.ptr) == ptr


def test_holds_the_newest_entries():
    q = FeatureQueue(6, 2)
    newest = deque(maxlen=6)
    for step in range(10):
        x = torch.full((4, 2), float(step)) + torch.arange(4.0)[:, None] / 10
        q.enqueue(x)
        newest.extend(x)
    assert sorted(q.features[:, 0].tolist()) == sorted(float(r[0]) for r in newest)


def test_starts_with_random_unit_vectors():
    q = FeatureQueue(100, 16)
    assert torch.allclose(q.features.norm(dim=1), torch.ones(100), atol=1e-5)
    assert q.features.std() > 0.1


def test_state_dict_round_trip():
    q = FeatureQueue(10, 4)
    q.enqueue(torch.randn(7, 4), torch.arange(7) + 100)
    state = q.state_dict()
    assert set(state) == {"features", "ptr", "index"}
    r = FeatureQueue(10, 4)
    r.load_state_dict(state)
    assert torch.equal(r.features, q.features) and int(r.ptr) == 7 and torch.equal(r.index, q.index)
    x = torch.randn(5, 4)
    q.enqueue(x, torch.arange(5))
    r.enqueue(x, torch.arange(5))
    assert torch.equal(r.features, q.features) and int(r.ptr) == int(q.ptr) == 2
    assert torch.equal(r.index, q.index)


@pytest.mark.parametrize("size,batches", [(7, [3, 3, 3, 3]), (5, [2, 7, 1, 5, 6]), (4, [9])])
def test_index_stays_aligned_with_the_features(size, batches):
    q = FeatureQueue(size, 1)
    assert q.index.tolist() == [-1] * size  # nothing known yet
    next_id = 0
    for n in batches:
        ids = torch.arange(next_id, next_id + n)
        q.enqueue(ids[:, None].float(), ids)  # each row's feature is its own id
        next_id += n
        known = q.index >= 0
        assert torch.equal(q.features[known, 0].long(), q.index[known])
    assert sorted(q.index.tolist()) == list(range(next_id - size, next_id))


def test_enqueue_without_index_marks_rows_unknown():
    q = FeatureQueue(4, 2)
    q.enqueue(torch.randn(3, 2), torch.tensor([5, 6, 7]))
    q.enqueue(torch.randn(2, 2))
    assert q.index.tolist() == [-1, 6, 7, -1]


def test_bad_input():
    with pytest.raises(ValueError, match="size"):
        FeatureQueue(0, 4)
    with pytest.raises(ValueError, match="expects"):
        FeatureQueue(8, 4).enqueue(torch.randn(2, 5))
    with pytest.raises(ValueError, match="index"):
        FeatureQueue(8, 4).enqueue(torch.randn(2, 4), torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match="index"):
        FeatureQueue(8, 4).enqueue(torch.randn(2, 4), torch.arange(3))


def _enqueue_on_two_ranks(rank, world_size):
    torch.manual_seed(0)  # same initial queue on both ranks
    q = FeatureQueue(11, 3)
    for step in range(4):
        x = torch.full((3, 3), 100.0 * rank + step) + torch.arange(3.0)[:, None]
        q.enqueue(x, x[:, 0].long())  # the index of a row is its value
    # naive replay of what both ranks should hold: rank 0's rows, then rank 1's, each step
    torch.manual_seed(0)
    slots = list(FeatureQueue(11, 3).features.clone())
    ptr = 0
    for step in range(4):
        for r in range(world_size):
            for row in torch.full((3, 3), 100.0 * r + step) + torch.arange(3.0)[:, None]:
                slots[ptr] = row
                ptr = (ptr + 1) % 11
    assert torch.equal(q.features, torch.stack(slots)), f"rank {rank} queue differs from the gathered replay"
    known = q.index >= 0
    assert int(known.sum()) == 11 and torch.equal(q.features[known, 0].long(), q.index[known])
    assert int(q.ptr) == ptr == (4 * 3 * world_size) % 11
    gathered = [torch.empty_like(q.features) for _ in range(world_size)]
    torch.distributed.all_gather(gathered, q.features)
    assert torch.equal(gathered[0], gathered[1])


def test_two_processes_enqueue_the_same_gathered_keys_in_the_same_order():
    run_distributed(_enqueue_on_two_ranks)
