"""Load test of the web demo: many gradio_client clients at once against a freshly launched ``app.py``.

The app runs in its own process (as in production), so the clients' threads do not compete with the server for
the GIL. Every client is a separate ``gradio_client.Client`` (its own connection and queue session) that sends its
requests one after another; the report gives the success rate and the latency percentiles per endpoint, as seen by
the clients (queue wait included), and the overall throughput.

Then it measures whether a heavy request delays light ones, in three phases of the same run: ``--probe`` light
requests per endpoint sent at once (one client each) with nothing else in flight ("idle"), the same while one heavy
/upscale request (a ``--heavy-size`` square, accepted: under the output cap) is being processed, and the same while
a huge /upscale request (5000x5000 at output scale 1, which the demo refuses from its header) is in flight. The
light requests' p50/p95 in each phase are reported with their ratio to the idle phase.

    python bench/app_load.py --weights weights                    # 20 clients x 5 requests to /upscale
    python bench/app_load.py --tiny --endpoints all               # tiny random models, every endpoint
    python bench/app_load.py --tiny --concurrency 2 --json bench/results/app_load.json
    python bench/app_load.py --weights weights --heavy-size 0     # load figures only, no heavy-vs-light phases
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


def timed_request(client: Any, endpoint: str, args: tuple) -> dict[str, Any]:
    start = time.perf_counter()
    try:
        client.predict(*args, api_name=f"/{endpoint}")
        ok, error = True, ""
    except Exception as err:
        ok, error = False, str(err)[:200]
    return {"endpoint": endpoint, "ok": ok, "s": time.perf_counter() - start, "error": error}


def probe_phase(url: str, endpoints: list[str], per_endpoint: int, inputs: dict[str, tuple],
                heavy: tuple | None = None) -> dict[str, Any]:
    """Light requests sent at once (one connected client each), optionally once a heavy /upscale request is being
    processed: their latencies, and the heavy request's own time and outcome. Returns after both are done, so the
    next phase starts on an idle server."""
    from gradio_client import Client
    from gradio_client.utils import Status

    names = [e for e in endpoints for _ in range(per_endpoint)]
    clients = [Client(url, verbose=False) for _ in names]
    job, heavy_start = None, 0.0
    if heavy is not None:
        heavy_client = Client(url, verbose=False)
        heavy_start = time.perf_counter()
        job = heavy_client.submit(*heavy, api_name="/upscale")
        deadline = heavy_start + 120
        while not job.done() and job.status().code != Status.PROCESSING and time.perf_counter() < deadline:
            time.sleep(0.01)
    results: list[dict[str, Any]] = []
    threads = [threading.Thread(target=lambda c=c, n=n: results.append(timed_request(c, n, inputs[n])))
               for c, n in zip(clients, names, strict=True)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    phase: dict[str, Any] = {"light": summarise(results, 1.0)["endpoints"], "all_light": light_stats(results)}
    if job is not None:
        try:
            job.result(timeout=600)
            outcome = "served"
        except Exception as err:
            outcome = f"refused: {str(err)[:160]}"
        phase["heavy"] = {"s": time.perf_counter() - heavy_start, "outcome": outcome}
    return phase


def light_stats(results: list[dict[str, Any]]) -> dict[str, Any]:
    ok = [r["s"] for r in results if r["ok"]]
    return {"requests": len(results), "ok": len(ok), "p50_s": percentile(ok, 0.5), "p95_s": percentile(ok, 0.95)}


def heavy_vs_light(url: str, endpoints: list[str], per_endpoint: int, inputs: dict[str, tuple], folder: Path,
                   heavy_size: int) -> dict[str, Any]:
    """The idle, heavy-in-flight and refused-huge-in-flight phases, with light p50/p95 ratios to idle."""
    import numpy as np
    from gradio_client import handle_file
    from PIL import Image as PILImage

    from restore.data.io import write_image

    rng = np.random.default_rng(1)
    write_image(folder / "heavy.png", rng.random((heavy_size, heavy_size, 3)))
    PILImage.new("RGB", (5000, 5000), (90, 120, 200)).save(folder / "huge.png")
    phases = {"idle": probe_phase(url, endpoints, per_endpoint, inputs),
              f"heavy {heavy_size}x{heavy_size} /upscale x4 in flight": probe_phase(
                  url, endpoints, per_endpoint, inputs, (handle_file(str(folder / "heavy.png")), None, 4, 256)),
              "huge 5000x5000 /upscale at scale 1 in flight": probe_phase(
                  url, endpoints, per_endpoint, inputs, (handle_file(str(folder / "huge.png")), None, 1, 256))}
    idle = phases["idle"]
    for phase in phases.values():
        for name, row in [("all", phase["all_light"]), *phase["light"].items()]:
            base = idle["all_light"] if name == "all" else idle["light"][name]
            row["p50_ratio"] = row["p50_s"] / base["p50_s"] if base["p50_s"] > 0 else float("nan")
            row["p95_ratio"] = row["p95_s"] / base["p95_s"] if base["p95_s"] > 0 else float("nan")
    return {"light_per_endpoint": per_endpoint, "heavy_size": heavy_size, "phases": phases}


def print_heavy(report: dict[str, Any]) -> None:
    print(f"\nheavy vs light: {report['light_per_endpoint']} light request(s) per endpoint sent at once, one client "
          f"each; ratios are to the idle phase")
    print(f"{'light endpoint':<20}{'ok':>9}{'p50 s':>9}{'p95 s':>9}{'x p50':>8}{'x p95':>8}")
    for title, phase in report["phases"].items():
        heavy = phase.get("heavy")
        print(f"{title}" + (f" (it took {heavy['s']:.1f} s, {heavy['outcome']})" if heavy else ""))
        for name, row in [*phase["light"].items(), ("all light", phase["all_light"])]:
            print(f"  {name:<18}{row['ok']:>5}/{row['requests']:<3}{row['p50_s']:>9.2f}{row['p95_s']:>9.2f}"
                  f"{row['p50_ratio']:>8.2f}{row['p95_ratio']:>8.2f}")


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


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
    p.add_argument("--probe", type=int, default=3, help="light requests per endpoint in each heavy-vs-light phase")
    p.add_argument("--heavy-size", type=int, default=512,
                   help="side of the heavy /upscale input (x4 must stay under the 64 MP cap); 0: skip those phases")
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
            heavy = (heavy_vs_light(url, endpoints, args.probe, inputs, tmp_path, args.heavy_size)
                     if args.heavy_size > 0 else None)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
    report = summarise(results, wall)
    report.update(clients=args.clients, requests_per_client=args.requests, concurrency=args.concurrency,
                  image_size=args.size, weights="tiny random models" if args.tiny else str(args.weights),
                  startup_s=startup, host=platform.node(), cpu_model=cpu_model(), cpus=os.cpu_count(),
                  device=args.device, heavy_vs_light=heavy)
    print(f"{args.clients} clients x {args.requests} requests, app.py --concurrency {args.concurrency}, "
          f"{args.size}px inputs, {report['weights']} (app start-up {startup:.1f} s) on {report['cpu_model']}, "
          f"{report['cpus']} CPUs, device {args.device}")
    print(f"{'endpoint':<20}{'ok':>9}{'success':>9}{'p50 s':>9}{'p95 s':>9}{'max s':>9}")
    for name, row in report["endpoints"].items():
        print(f"{name:<20}{row['ok']:>5}/{row['requests']:<3}{row['success_rate']:>9.1%}{row['p50_s']:>9.2f}"
              f"{row['p95_s']:>9.2f}{row['max_s']:>9.2f}")
    print(f"overall: {report['success_rate']:.1%} of {report['requests']} requests in {wall:.1f} s "
          f"({report['throughput_rps']:.1f} req/s)")
    for error in report["errors"]:
        print(f"error: {error}")
    if heavy is not None:
        print_heavy(heavy)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0 if report["success_rate"] == 1.0 else 1


if __name__ == "__main__":
    sys.exit(main())
