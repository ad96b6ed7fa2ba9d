"""Deterministic, resumable batch sampling for any number of ranks.

Step s of a run always sees the same samples, whatever happened before: epoch e = s // steps_per_epoch uses the
permutation ``randperm(N, seed + e)``, and rank r of W takes its slice of the global batch. Indices passed to the
dataset encode the epoch (``e * N + i``) so per-sample augmentation can be seeded by (seed, epoch, index) inside
DataLoader workers too. Resuming at step s is just starting the sampler at s.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import Dataset


class StepBatchSampler:
    """Infinite batch sampler starting at ``start_step``; yields lists of encoded indices (see module doc)."""

    def __init__(self, num_samples: int, batch_size: int, seed: int, start_step: int = 0, rank: int = 0,
                 world_size: int = 1):
        if num_samples < batch_size * world_size:
            raise ValueError(f"the training set has {num_samples} samples, fewer than one global batch "
                             f"({batch_size} x {world_size} ranks); lower train.batch_size or add images")
        self.n, self.batch, self.seed = num_samples, batch_size, seed
        self.step, self.rank, self.world = start_step, rank, world_size
        self.steps_per_epoch = num_samples // (batch_size * world_size)

    def _perm(self, epoch: int) -> torch.Tensor:
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        return torch.randperm(self.n, generator=gen)

    def __iter__(self) -> Iterator[list[int]]:
        epoch, perm = -1, None
        step = self.step
        while True:
            e, j = divmod(step, self.steps_per_epoch)
            if e != epoch:
                epoch, perm = e, self._perm(e)
            start = (j * self.world + self.rank) * self.batch
            yield [epoch * self.n + int(i) for i in perm[start:start + self.batch]]
            step += 1


class EpochIndexed(Dataset):
    """Decodes ``e * N + i`` into ``set_epoch(e)`` + ``dataset[i]`` (datasets without set_epoch just get ``i``).

    A dataset whose ``staged`` is true splits its items in two: the workers run ``load_staged(i)`` and the task
    finishes the collated batch on the training device (``finish_batch``; restore.data.sr.HRFolderDataset)."""

    def __init__(self, dataset: Dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, encoded: int):
        epoch, index = divmod(int(encoded), len(self))
        set_epoch = getattr(self.dataset, "set_epoch", None)
        if set_epoch is not None:
            set_epoch(epoch)
        if getattr(self.dataset, "staged", False):
            return self.dataset.load_staged(index)
        return self.dataset[index]
