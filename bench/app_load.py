"""Load test of the web demo: many gradio_client clients at once against a freshly launched ``app.py``.

The app runs in its own process (as in production), so the clients' threads do not compete with the server for
the GIL. Every client is a separate ``gradio_client.Client`` (its own connection and queue session) that sends its
requests one after another; the report gives the success rate and the latency percentiles per endpoint, as seen by
the clients (queue wait included), and the overall throughput.

    python bench/app_load.py --weights weights                    # 20 clients x 5 requests to /upscale
    python bench/app_load.py --tiny --endpoints all               # tiny random models, every endpoint
    python bench/app_load.py --tiny --concurrency 2 --json bench/results/app_load.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
ENDPOINTS = ("upscale", "label_to_photo", "change_attributes")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_app(weights: Path, port: int, concurrency: int, device: str, log: Path) -> subprocess.Popen:
    """``python app.py`` in a child process; returns once it answers HTTP (or raises with its log)."""
    cmd = [sys.executable, str(ROOT / "app.py"), "--weights", str(weights), "--port", str(port),
           "--concurrency", str(concurrency), "--device", device]
    with open(log, "w") as out:  # the child keeps its own copy of the descriptor
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.time() + 180
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"app.py exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/config", timeout=2) as r:
                if r.status == 200:
                    return proc
        except OSError:
            time.sleep(0.5)
    proc.terminate()
    raise RuntimeError(f"app.py did not answer within 180 s:\n{log.read_text()[-3000:]}")


def full_targets(weights: Path) -> dict[str, int]:
    """Targets that decide every attribute of the first StarGAN model (valid with or without a classifier)."""
    from restore.engine.weights import read_generator
    from restore.hub.pipelines import published

    paths = published(weights).get("stargan", [])
    if not paths:
        return {}
    desc, _ = read_generator(paths[0])
    names, groups = desc["attribute_names"], desc.get("exclusive_groups", [])
    grouped = {i for g in groups for i in g}
    out = {names[g[0]]: 1 for g in groups if g}
    out.update({n: 1 for i, n in enumerate(names) if i not in grouped})
    return out


def make_inputs(folder: Path, weights: Path, size: int) -> dict[str, tuple]:
    """Arguments per endpoint (files as gradio_client handles)."""
    import numpy as np
    from gradio_client import handle_file

    from restore.data.io import write_image

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:size, 0:size] / size
    img = np.clip(np.stack([xx, yy, 0.5 + 0.3 * np.sin(8 * xx)], -1) + rng.normal(0, 0.05, (size, size, 3)), 0, 1)
    write_image(folder / "load.png", img)
    examples = ROOT / "weights" / "examples"
    return {"upscale": (handle_file(str(folder / "load.png")),),
            "label_to_photo": (handle_file(str(examples / "facade_labels.png")),),
            "change_attributes": (handle_file(str(folder / "load.png")), None, full_targets(weights))}


def client_loop(url: str, endpoints: list[str], requests: int, inputs: dict[str, tuple], index: int,
                results: list[dict[str, Any]], barrier: threading.Barrier) -> None:
    from gradio_client import Client

    try:
        client = Client(url, verbose=False)
    except Exception as err:  # a client that cannot even connect counts all its requests as failures
        barrier.wait()
        results += [{"endpoint": endpoints[(index + k) % len(endpoints)], "ok": False, "s": 0.0,
                     "error": f"connect: {err}"} for k in range(requests)]
        return
    barrier.wait()  # every client connected: start together
    for k in range(requests):
        endpoint = endpoints[(index + k) % len(endpoints)]
        start = time.perf_counter()
        try:
            client.predict(*inputs[endpoint], api_name=f"/{endpoint}")
            ok, error = True, ""
        except Exception as err:
            ok, error = False, str(err)[:200]
        results.append({"endpoint": endpoint, "ok": ok, "s": time.perf_counter() - start, "error": error})


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q
    lo, hi = int(pos), min(int(pos) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def summarise(results: list[dict[str, Any]], wall: float) -> dict[str, Any]:
    table = {}
    for endpoint in sorted({r["endpoint"] for r in results}):
        rows = [r for r in results if r["endpoint"] == endpoint]
        ok = [r["s"] for r in rows if r["ok"]]
        table[endpoint] = {"requests": len(rows), "ok": len(ok), "success_rate": len(ok) / len(rows),
                           "p50_s": percentile(ok, 0.5), "p95_s": percentile(ok, 0.95),
                           "max_s": max(ok) if ok else float("nan"),
                           "mean_s": statistics.fmean(ok) if ok else float("nan")}
    errors = sorted({r["error"] for r in results if not r["ok"]})
    total_ok = sum(r["ok"] for r in results)
    return {"endpoints": table, "requests": len(results), "success_rate": total_ok / max(1, len(results)),
            "wall_s": wall, "throughput_rps": total_ok / wall if wall > 0 else float("nan"), "errors": errors[:10]}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--weights", type=Path, help="published models to serve (default: tiny random ones, --tiny)")
    p.add_argument("--tiny", action="store_true", help="write tiny random SR/SPADE/StarGAN models and serve those")
    p.add_argument("--clients", type=int, default=20)
    p.add_argument("--requests", type=int, default=5, help="requests per client, sent one after another")
    p.add_argument("--endpoints", default="upscale", help=f"comma-separated from {', '.join(ENDPOINTS)}, or all")
    p.add_argument("--size", type=int, default=128, help="side of the square test image (SR input, face)")
    p.add_argument("--concurrency", type=int, default=1, help="app.py --concurrency")
    p.add_argument("--device", default="auto")
    p.add_argument("--json", type=Path, help="also write the figures here")
    args = p.parse_args(argv)
    endpoints = list(ENDPOINTS) if args.endpoints == "all" else [e.strip() for e in args.endpoints.split(",")]
    unknown = [e for e in endpoints if e not in ENDPOINTS]
    if unknown:
        p.error(f"unknown endpoint(s) {', '.join(unknown)}; choose from {', '.join(ENDPOINTS)} or all")
    if args.weights is None and not args.tiny:
        p.error("pass --weights FOLDER or --tiny")

    with tempfile.TemporaryDirectory(prefix="app-load-") as tmp:
        tmp_path = Path(tmp)
        weights = args.weights
        if args.tiny:
            sys.path.insert(0, str(ROOT))
            from tests.test_app import write_tiny_models

            weights = write_tiny_models(tmp_path / "weights")
        port = free_port()
        log = tmp_path / "app.log"
        t0 = time.perf_counter()
        proc = start_app(weights, port, args.concurrency, args.device, log)
        startup = time.perf_counter() - t0
        try:
            inputs = make_inputs(tmp_path, weights, args.size)
            results: list[dict[str, Any]] = []
            barrier = threading.Barrier(args.clients + 1)
            url = f"http://127.0.0.1:{port}/"
            threads = [threading.Thread(target=client_loop, args=(url, endpoints, args.requests, inputs, i, results,
                                                                  barrier)) for i in range(args.clients)]
            for t in threads:
                t.start()
            barrier.wait()
            start = time.perf_counter()
            for t in threads:
                t.join()
            wall = time.perf_counter() - start
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
    report = summarise(results, wall)
    report.update(clients=args.clients, requests_per_client=args.requests, concurrency=args.concurrency,
                  image_size=args.size, weights="tiny random models" if args.tiny else str(args.weights),
                  startup_s=startup, host=platform.node(), cpus=os.cpu_count(), device=args.device)
    print(f"{args.clients} clients x {args.requests} requests, app.py --concurrency {args.concurrency}, "
          f"{args.size}px inputs, {report['weights']} (app start-up {startup:.1f} s)")
    print(f"{'endpoint':<20}{'ok':>9}{'success':>9}{'p50 s':>9}{'p95 s':>9}{'max s':>9}")
    for name, row in report["endpoints"].items():
        print(f"{name:<20}{row['ok']:>5}/{row['requests']:<3}{row['success_rate']:>9.1%}{row['p50_s']:>9.2f}"
              f"{row['p95_s']:>9.2f}{row['max_s']:>9.2f}")
    print(f"overall: {report['success_rate']:.1%} of {report['requests']} requests in {wall:.1f} s "
          f"({report['throughput_rps']:.1f} req/s)")
    for error in report["errors"]:
        print(f"error: {error}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0 if report["success_rate"] == 1.0 else 1


if __name__ == "__main__":
    sys.exit(main())
