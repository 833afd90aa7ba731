import json
import tarfile

import datasets
import pytest
import torch
from torch.utils.data import DataLoader

from scene_ssl.data import load_dataset, load_stream, make_scenes
from scene_ssl.data.shard_reader import expand_braces, iterate_shard
from scene_ssl.data.shards import write_shards
from scene_ssl.data.stream import ShardedViewStream, StreamState
from scene_ssl.data.views import collate_views
from scene_ssl.transforms import MoCoV2Transform

from ..distributed_helpers import run_distributed


@pytest.fixture(scope="module")
def shard_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("shards")
    scenes = make_scenes(root / "scenes", num_classes=5, num_train=48, num_val=4, image_size=(40, 30))
    write_shards(f"coco:{scenes}", "train", root / "wds", shard_size=6, progress=False)  # 8 shards of 6
    return scenes, root / "wds"


def test_shards_hold_the_same_images_and_labels(shard_dir):
    scenes, wds = shard_dir
    data = load_dataset(f"coco:{scenes}", "train").cast_column("image", datasets.Image(decode=False))
    index = json.loads((wds / "index.json").read_text())
    assert [s["count"] for s in index["shards"]] == [6] * 8 and len(index["class_names"]) == 5
    seen = 0
    for shard in sorted(wds.glob("*.tar")):
        for key, parts in iterate_shard(str(shard)):
            row = data[int(key)]
            stored = row["image"]["bytes"] or open(row["image"]["path"], "rb").read()
            assert parts["jpg"] == stored  # the bytes as stored, not re-encoded
            meta = json.loads(parts["json"])
            assert meta["labels"] == row["labels"] and meta["image_id"] == row["image_id"]
            seen += 1
    assert seen == len(data)
    source = load_stream(f"wds:{wds}")
    assert source.counts == [6] * 8 and len(source) == 48
    assert load_stream(f"wds:{wds}/train-{{000000..000003}}.tar").counts == [6] * 4
    assert load_stream(f"wds:file://{wds}/train-000000.tar").counts == [6]  # any fsspec URL


def test_brace_patterns():
    assert expand_braces("a{1..2}-{08..09}.tar") == ["a1-08.tar", "a1-09.tar", "a2-08.tar", "a2-09.tar"]


def _stream(wds, workers=2, rank=0, world=1, batch=3, **kw):
    return ShardedViewStream(load_stream(f"wds:{wds}"), MoCoV2Transform(size=16), batch_size=batch, num_workers=workers,
                             rank=rank, world_size=world, seed=0, shuffle_buffer=4, **kw)


def _indices(dataset, workers, epoch=0, state=None):
    loader = DataLoader(dataset, batch_size=dataset.batch_size, num_workers=workers, collate_fn=collate_views)
    order = []
    for batch in loader:
        order.append(batch["index"].tolist())
        if state is not None:
            state.update(batch)
    return order


def _every_sample_once(rank, world_size, wds):
    torch.set_num_threads(1)
    dataset = _stream(wds, workers=2, rank=rank, world=world_size)
    dataset.set_epoch(1)
    mine = [i for b in _indices(dataset, 2) for i in b]
    parts = [None] * world_size
    torch.distributed.all_gather_object(parts, mine)
    everything = [i for p in parts for i in p]
    assert sorted(everything) == list(range(48)), "an epoch must see every sample exactly once"
    assert len(mine) == len(dataset) == 24


def test_two_processes_times_two_workers_see_every_sample_exactly_once(shard_dir):
    run_distributed(_every_sample_once, str(shard_dir[1]))


@pytest.mark.parametrize("cut", [3, 4])  # after 3 batches the next comes from the second worker
def test_resume_mid_epoch_continues_the_same_order(shard_dir, cut):
    wds = shard_dir[1]
    full = _stream(wds)
    full.set_epoch(2)
    order = _indices(full, 2)
    assert len(order) == 16 and sorted(i for b in order for i in b) == sorted(set(i for b in order for i in b))
    first, state = _stream(wds), StreamState()
    first.set_epoch(2)
    loader = DataLoader(first, batch_size=3, num_workers=2, collate_fn=collate_views)
    for n, batch in enumerate(loader, 1):
        state.update(batch)
        if n == cut:
            break
    resumed = _stream(wds)
    resumed.resume_at(2, cut, state.positions)
    assert order[:cut] + _indices(resumed, 2) == order


def test_a_corrupt_member_is_skipped_counted_and_replaced(tmp_path, shard_dir):
    wds = tmp_path / "bad"
    wds.mkdir()
    good = sorted(shard_dir[1].glob("*.tar"))
    for src in good[:2]:
        (wds / src.name).write_bytes(src.read_bytes())
    with tarfile.open(wds / "train-000002.tar", "w") as tar:  # one truncated JPEG among good samples
        for key, parts in list(iterate_shard(str(good[2])))[:3]:
            for ext, data in parts.items():
                data = data[:60] if key.endswith("13") and ext == "jpg" else data
                info = tarfile.TarInfo(f"{key}.{ext}")
                info.size = len(data)
                tar.addfile(info, __import__("io").BytesIO(data))
    dataset = ShardedViewStream(load_stream(f"wds:{wds}"), MoCoV2Transform(size=16), batch_size=3, num_workers=1, seed=0,
                                shuffle_buffer=1)
    dataset.set_epoch(0)
    loader = DataLoader(dataset, batch_size=3, num_workers=0, collate_fn=collate_views)
    batches = list(loader)
    skipped = [n for b in batches for n in b["skipped"]]
    assert len(skipped) == 1 and skipped[0].endswith(":000000013")
    assert all(b["views"].shape[1] == 3 for b in batches)  # full batches: the next sample took its place
    assert 13 not in {i for b in batches for i in b["index"].tolist()}


def test_too_few_shards_for_the_workers_is_a_clear_error(shard_dir):
    with pytest.raises(ValueError, match="shards for 16 data-loader workers"):
        _stream(shard_dir[1], workers=8, world=2)


def test_stream_state_refuses_a_checkpoint_of_another_worker_layout():
    from scene_ssl.data.stream import StreamState

    saved = StreamState(workers=4)
    saved.positions = {0: 16, 3: 32}
    same = StreamState(workers=4)
    same.load_state_dict(saved.state_dict())
    assert same.positions == {0: 16, 3: 32}
    with pytest.raises(ValueError, match="4 data-loader workers .* this run has 2"):
        StreamState(workers=2).load_state_dict(saved.state_dict())


@pytest.mark.parametrize("damage", ["truncated", "empty"])
def test_a_damaged_shard_is_named_once_its_samples_counted_and_the_epoch_goes_on(tmp_path, shard_dir, damage):
    import shutil

    wds = tmp_path / "wds"
    shutil.copytree(shard_dir[1], wds)  # with index.json: the counts are known, the damage is met while reading
    broken = wds / "train-000003.tar"
    broken.write_bytes(broken.read_bytes()[:3000] if damage == "truncated" else b"")
    dataset = _stream(wds, workers=2)
    dataset.set_epoch(0)
    loader = DataLoader(dataset, batch_size=dataset.batch_size, num_workers=2, collate_fn=collate_views)
    batches = list(loader)  # main 8d5e37d: a DataLoader-worker traceback (ReadError), the run stopped
    skipped = {n for b in batches for n in b["skipped"]}
    assert len(skipped) == 1 and "train-000003.tar (damaged shard" in next(iter(skipped))
    readable = 0  # the whole samples before the damage
    with pytest.raises((tarfile.TarError, EOFError, OSError)):
        for _ in iterate_shard(str(broken)):
            readable += 1
    lost = int(next(iter(skipped)).split("its last ")[1].split(" of 6")[0])
    assert lost == 6 - readable and (damage == "truncated" or lost == 6)
    assert sum(len(b["index"]) for b in batches) == len(dataset)  # every place filled


def test_the_converter_refuses_a_folder_with_shards_unless_overwrite(tmp_path, shard_dir):
    from scene_ssl.data.shards import main

    scenes = shard_dir[0]
    out = tmp_path / "wds"
    write_shards(f"coco:{scenes}", "train", out, shard_size=6, progress=False)  # 8 shards
    with pytest.raises(SystemExit) as exit_:
        main(["--data", f"coco:{scenes}", "--split", "train", "--output-dir", str(out), "--shard-size", "12"])
    assert exit_.value.code == 2  # main 8d5e37d: 4 new shards written beside the 8 old ones, 64 samples read
    main(["--data", f"coco:{scenes}", "--split", "train", "--out", str(out), "--shard-size", "12", "--overwrite"])  # the old spelling
    assert len(list(out.glob("*.tar"))) == 4 and len(load_stream(f"wds:{out}")) == 48


def test_a_folder_spec_reads_the_shards_its_index_lists(tmp_path, shard_dir):
    import shutil

    wds = tmp_path / "wds"
    shutil.copytree(shard_dir[1], wds)
    shutil.copy(wds / "train-000000.tar", wds / "stray-copy.tar")
    assert len(load_stream(f"wds:{wds}")) == 48  # main 8d5e37d: 54, the stray tar read too
    (wds / "train-000007.tar").unlink()
    with pytest.raises(FileNotFoundError, match="lists 1 shard"):
        load_stream(f"wds:{wds}")
