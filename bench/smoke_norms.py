"""Smoke-train one task's recipe once per critic norm and print the final losses and throughput.

Each norm runs the same recipe (same data, seed and steps) in this process, one after another; the table's ratio
column is the step time relative to the ``none`` run measured in the same invocation (machines here are noisy).

    python bench/smoke_norms.py --task spade          # options/train/spade/smoke.yml
    python bench/smoke_norms.py --task stargan --steps 30 --norms san,sn,none
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RECIPES = {"sr": "options/train/sr/x4_smoke.yml", "spade": "options/train/spade/smoke.yml",
           "stargan": "options/train/stargan/smoke.yml"}
KEYS = {"sr": ("d/adv", "g/adv", "g/content", "g/perceptual"),
        "spade": ("d/adv", "g/adv", "g/feature_matching", "g/perceptual"),
        "stargan": ("d/adv", "d/cls", "g/adv", "g/cls", "g/rec")}


def run_one(task: str, norm: str, steps: int, root: Path) -> dict:
    from restore.engine.runs import RunFolder
    from restore.train import train

    log_every = max(1, steps // 3)
    sets = [f"path.root={root / norm}", f"train.steps={steps}", f"train.log_every={log_every}", "val.every=100000",
            f"checkpoint.every={steps}", f"critic.norm={{type: {norm}}}"]
    tic = time.perf_counter()
    result = train(RECIPES[task], sets, progress=False)
    wall = time.perf_counter() - tic
    rows = RunFolder.at(result.run_dir).metric_rows()
    last = [r for r in rows if "speed/it_per_s" in r][-1]
    speed = [r["speed/it_per_s"] for r in rows if "speed/it_per_s" in r][1:] or [last["speed/it_per_s"]]
    return {"norm": norm, "wall_s": wall, "it_per_s": sum(speed) / len(speed), **{k: last.get(k) for k in KEYS[task]}}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--task", choices=sorted(RECIPES), default="spade")
    ap.add_argument("--norms", default="none,san,sn,bsn,gp,r1,gran")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--json", help="also write the rows as JSON")
    args = ap.parse_args()
    import os

    os.chdir(ROOT)
    norms = args.norms.split(",")
    if "none" in norms:  # the baseline first
        norms = ["none"] + [n for n in norms if n != "none"]
    with tempfile.TemporaryDirectory() as tmp:
        rows = [run_one(args.task, n, args.steps, Path(tmp)) for n in norms]
    base = next((r["it_per_s"] for r in rows if r["norm"] == "none"), None)
    keys = KEYS[args.task]
    print(f"\n{args.task} smoke recipe, {args.steps} steps, CPU (torch threads: "
          f"{__import__('torch').get_num_threads()}); losses at the last logged step")
    print("| norm | it/s | step time x none | " + " | ".join(keys) + " |")
    print("|---|---|---|" + "---|" * len(keys))
    for r in rows:
        ratio = f"{base / r['it_per_s']:.2f}" if base else "-"
        vals = " | ".join("-" if r[k] is None else f"{r[k]:.3f}" for k in keys)
        print(f"| {r['norm']} | {r['it_per_s']:.2f} | {ratio} | {vals} |")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
