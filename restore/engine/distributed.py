"""torchrun / DistributedDataParallel set-up. One process per device; CPU runs use the gloo backend."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from restore.devices import choose_device


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_from_env(device: str = "auto") -> tuple[DistInfo, torch.device]:
    """Read torchrun's RANK / WORLD_SIZE / LOCAL_RANK, start the process group, pick this rank's device."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    chosen = choose_device(device)  # a device that is not there is a one-line error
    use_cuda = chosen.type == "cuda"
    if use_cuda:  # torchrun: each rank takes its local GPU unless an index was given
        dev = chosen if chosen.index is not None else torch.device("cuda", local % max(torch.cuda.device_count(), 1))
    else:
        dev = chosen
    if use_cuda:
        torch.cuda.set_device(dev)
    info = DistInfo(rank, world, local)
    if info.enabled and not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo", rank=rank, world_size=world)
    return info, dev


def barrier(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.barrier()


def all_reduce_mean(value: torch.Tensor, info: DistInfo) -> torch.Tensor:
    if info.enabled and dist.is_initialized():
        value = value.clone()
        dist.all_reduce(value)
        value /= info.world_size
    return value


def any_rank(flag: bool, info: DistInfo, device: torch.device | None = None) -> bool:
    """True if ``flag`` is set on any rank (so all ranks stop together, e.g. on SIGTERM or a NaN loss)."""
    if not (info.enabled and dist.is_initialized()):
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def cleanup(synchronise: bool = True) -> None:
    """Leave the process group. On a clean exit all ranks meet at a barrier first: a rank that tears its group down
    while a peer's last collective is still in flight can be aborted at exit by gloo's worker threads (SIGABRT,
    "terminate called without an active exception"). After an error the peers may never arrive, so no barrier."""
    if dist.is_initialized():
        if synchronise:
            try:
                dist.barrier()
            except Exception:  # noqa: BLE001 - peers already gone: destroying the group is all that is left
                pass
        dist.destroy_process_group()
