import itertools

import pytest
import torch

from restore.engine import checkpoint as ckpt
from restore.engine.sampler import EpochIndexed, StepBatchSampler
from tests.engine.toy import ToyData


def take(sampler, n):
    return list(itertools.islice(iter(sampler), n))


def test_sampler_is_deterministic_and_resumes_at_any_step():
    full = take(StepBatchSampler(10, 3, seed=5), 12)
    assert take(StepBatchSampler(10, 3, seed=5, start_step=7), 5) == full[7:12]
    assert full != take(StepBatchSampler(10, 3, seed=6), 12)


def test_sampler_covers_each_epoch_without_repeats_and_encodes_the_epoch():
    batches = take(StepBatchSampler(10, 3, seed=0), 6)  # 3 steps per epoch (one sample dropped per epoch)
    first = [i for b in batches[:3] for i in b]
    second = [i for b in batches[3:] for i in b]
    assert len(set(first)) == 9 and all(0 <= i < 10 for i in first)
    assert len(set(second)) == 9 and all(10 <= i < 20 for i in second)


def test_ranks_split_the_global_batch():
    one = take(StepBatchSampler(12, 4, seed=1, world_size=1), 3)
    r0 = take(StepBatchSampler(12, 2, seed=1, rank=0, world_size=2), 3)
    r1 = take(StepBatchSampler(12, 2, seed=1, rank=1, world_size=2), 3)
    for g, a, b in zip(one, r0, r1, strict=True):
        assert sorted(g) == sorted(a + b) and not set(a) & set(b)


def test_too_small_dataset_is_a_clear_error():
    with pytest.raises(ValueError, match="fewer than one global batch"):
        StepBatchSampler(3, 4, seed=0)


def test_epoch_indexed_sets_the_epoch():
    ds = EpochIndexed(ToyData())
    assert torch.equal(ds[16 * 2 + 5]["gt"], ds[16 * 2 + 5]["gt"])
    assert not torch.equal(ds[5]["gt"], ds[16 + 5]["gt"])  # same image, different epoch: different noise


def test_atomic_save_prune_and_latest(tmp_path):
    folder = tmp_path / "checkpoints"
    for step in (3, 6, 9, 12):
        ckpt.save_atomic({"step": step, "w": torch.ones(2) * step}, ckpt.checkpoint_path(folder, step))
    (folder / ".step_00000015.pt.abc.tmp").write_bytes(b"partial")  # an interrupted write is ignored
    ckpt.prune(folder, keep=2)
    assert [s for s, _ in ckpt.list_checkpoints(folder)] == [9, 12]
    assert ckpt.load(ckpt.latest_checkpoint(folder))["step"] == 12
    assert not [p for p in folder.iterdir() if p.suffix == ".tmp" and "step_00000012" in p.name]
    bad = folder / "step_00000099.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="cannot load checkpoint .*step_00000099.pt"):
        ckpt.load(bad)
    with pytest.raises(FileNotFoundError, match="checkpoint not found"):
        ckpt.load(folder / "nope.pt")
