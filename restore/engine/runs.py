"""The run folder's layout, known here only: ``<path.root>/<name>/`` holds everything one training run writes.

::

    runs/<name>/
      options.yml          the resolved recipe (written once, at the first start)
      checkpoints/         step_00000500.pt ... (atomic; the newest N kept)
      <name>.safetensors   the exported generator (EMA when the recipe keeps one)
      metrics.jsonl        one JSON line per logged step (losses, norms, speed, validation)
      hardware.jsonl       one line per training chunk: the device it ran on
      tb/                  TensorBoard events
      samples/             validation grids, step_00000500.png
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from restore.files import read_jsonl


@dataclass(frozen=True)
class RunFolder:
    """Paths of one run; ``name`` is the recipe's ``name`` (the exported weights are named after it)."""

    root: Path
    name: str

    @classmethod
    def of(cls, opts: Any) -> RunFolder:
        """The folder of a validated recipe: ``<path.root>/<name>``."""
        return cls(Path(opts.path.root) / opts.name, opts.name)

    @classmethod
    def at(cls, folder: str | Path) -> RunFolder:
        """An existing run folder (its name is the folder's name, as :meth:`of` makes it)."""
        folder = Path(folder)
        return cls(folder, folder.name)

    @property
    def options(self) -> Path:
        return self.root / "options.yml"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def weights(self) -> Path:
        return self.root / f"{self.name}.safetensors"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.jsonl"

    @property
    def hardware(self) -> Path:
        return self.root / "hardware.jsonl"

    @property
    def tensorboard(self) -> Path:
        return self.root / "tb"

    @property
    def samples(self) -> Path:
        return self.root / "samples"

    def sample(self, step: int) -> Path:
        return self.samples / f"step_{step:08d}.png"

    def stale_temporaries(self) -> list[Path]:
        """Half-written files a killed run left (atomic writes' ``.<name>.<random>.tmp``, time-budget probes):
        never read by anything, safe to delete when a run (re)starts in this folder."""
        found: list[Path] = []
        for folder in (self.root, self.checkpoints):
            if folder.is_dir():
                found += [p for p in folder.iterdir() if p.is_file() and p.name.startswith(".")
                          and (p.name.endswith(".tmp") or p.name.startswith(".time_probe"))]
        return sorted(found)

    def metric_rows(self) -> list[dict[str, Any]]:
        return read_jsonl(self.metrics)

    def hardware_rows(self) -> list[dict[str, Any]]:
        return read_jsonl(self.hardware)
