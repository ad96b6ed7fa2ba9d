"""SAN under DistributedDataParallel (gloo, 2 CPU processes): every rank ends with the same constants."""

import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, out_dir: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        from torch.nn.parallel import DistributedDataParallel as DDP

        from restore.builders import build_critic
        from restore.norms import build_norm

        torch.manual_seed(0)  # same init on both ranks (DDP also broadcasts rank 0's parameters)
        critic, norm = build_critic("standard_cnn", {"width": 4, "image_size": 16},
                                    build_norm({"type": "san", "ratio": 0.5, "every": 1, "seed": 3}))
        model = DDP(critic)
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
        torch.manual_seed(100 + rank)  # different data on each rank
        for _ in range(4):
            real, fake = torch.randn(4, 3, 16, 16), torch.randn(4, 3, 16, 16)
            loss = torch.relu(1 - model(real)).mean() + torch.relu(1 + model(fake)).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            norm.step()
        sigmas = {k: v for k, v in critic.state_dict().items() if k.endswith("sigma")}
        torch.save(sigmas, os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


@pytest.mark.skipif(not dist.is_available(), reason="torch.distributed is not available in this build")
def test_ranks_compute_identical_constants(tmp_path):
    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    a = torch.load(tmp_path / "rank0.pt", weights_only=True)
    b = torch.load(tmp_path / "rank1.pt", weights_only=True)
    assert a.keys() == b.keys() and len(a) == 8
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert any(float(v) != 1.0 for v in a.values())
