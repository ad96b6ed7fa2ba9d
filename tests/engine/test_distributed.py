"""2 processes with the gloo backend on the CPU, through the real Trainer."""

import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(rank: int, world: int, port: int, root: str, batch: int, norm: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    from restore.engine.distributed import cleanup, init_from_env
    from restore.engine.trainer import Trainer
    from tests.engine.toy import ToyTask, toy_options

    info, device = init_from_env("cpu")
    try:
        opts = toy_options(root, norm=norm, steps=4, batch_size=batch)
        torch.manual_seed(0)
        task = ToyTask(opts)
        trainer = Trainer(opts, task, os.path.join(root, "run"), device, info, progress=False)
        trainer.fit()
        state = {**{f"g.{k}": v for k, v in trainer.G.state_dict().items()},
                 **{f"d.{k}": v for k, v in trainer.D.state_dict().items()}}
        torch.save(state, os.path.join(root, f"rank{rank}.pt"))
    finally:
        cleanup()


@pytest.mark.skipif(not dist.is_available(), reason="torch.distributed is not available")
@pytest.mark.parametrize("norm", ["none", "san"])
def test_two_ranks_stay_in_sync_and_match_one_process_with_the_global_batch(tmp_path, norm):
    mp.spawn(_run, args=(2, _port(), str(tmp_path / "ddp"), 2, norm), nprocs=2, join=True)
    r0 = torch.load(tmp_path / "ddp" / "rank0.pt", weights_only=True)
    r1 = torch.load(tmp_path / "ddp" / "rank1.pt", weights_only=True)
    for k in r0:
        assert torch.equal(r0[k], r1[k]), k
    mp.spawn(_run, args=(1, _port(), str(tmp_path / "single"), 4, norm), nprocs=1, join=True)
    one = torch.load(tmp_path / "single" / "rank0.pt", weights_only=True)
    for k in r0:  # same samples per step, gradients averaged: equal up to summation order
        assert torch.allclose(r0[k].float(), one[k].float(), atol=1e-5, rtol=1e-4), k
