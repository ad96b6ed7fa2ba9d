"""Gradio web demo of the published restore models: super-resolution, label map -> photo, attribute transfer.

    python app.py [--weights weights] [--host 127.0.0.1] [--port 7860] [--device auto] [--max-pixels 4000000]
                  [--concurrency 1] [--share]

Without --host / --port it listens where Gradio's GRADIO_SERVER_NAME / GRADIO_SERVER_PORT say (Hugging Face Spaces
and Docker images set them), else on 127.0.0.1:7860; flags given on the command line win.

This file only lays out the page and launches it; what each button does is in ``restore/demo/`` (one module per tab).
"""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import gradio as gr

from restore.demo import (
    FACE_LICENSE_NOTE,
    NO_MODEL,
    DemoHandlers,
    attribute_controls,
    hex_colour,
    legend_html,
    load_models,
)
from restore.demo.common import refuse_large_canvas

ROOT = Path(__file__).resolve().parent
MAX_UPLOAD = "100mb"
DEFAULT_HOST, DEFAULT_PORT = "127.0.0.1", 7860


class ImageUpload(gr.Image):
    """``gr.Image`` that passes the uploaded file on untouched (a Gradio template: same widget in the browser).

    ``gr.Image`` opens every upload with Pillow before the handler runs, so a damaged file fails with a bare
    "Error"; the handlers read the file themselves (16-bit, EXIF, alpha kept) and say what is wrong with it."""

    is_template = True

    def preprocess(self, payload: Any) -> Any:
        if payload is not None and payload.path and not (payload.url or "").startswith("data:"):
            return str(payload.path)
        return super().preprocess(payload)


class CheckedEditor(gr.ImageEditor):
    """``gr.ImageEditor`` that checks the canvas images' sizes on their headers before decoding them (a Gradio
    template: same widget in the browser). ``max_pixels`` is set by the page from the handlers' limit."""

    is_template = True
    max_pixels: int = 4_000_000

    def preprocess(self, payload: Any) -> Any:
        if payload is not None:
            if getattr(payload, "id", None) is not None and payload.id in self.blob_storage:
                cached = self.blob_storage[payload.id]
                parts = [cached.background, *(cached.layers or []), cached.composite]
            else:
                parts = [getattr(f, "path", None) for f in
                         [payload.background, *(payload.layers or []), payload.composite] if f is not None]
            refuse_large_canvas(parts, self.max_pixels)
        return super().preprocess(payload)


def _upload(label: str, elem_id: str) -> ImageUpload:
    return ImageUpload(type="filepath", image_mode=None, label=label, sources=["upload", "clipboard"],
                       elem_id=elem_id, height=320)


def _missing(task: str, names: Sequence[str]) -> None:
    gr.Markdown(f"### {NO_MODEL}\nPublish one with `restore publish` into the weights folder (a `.safetensors` "
                f"file with its `.yml` card) and restart the app.", visible=not names, elem_id=f"{task}-missing")


def examples_folder(weights: str | Path) -> Path | None:
    """The weights folder's own examples/, else the ones bundled with the repository."""
    for folder in (Path(weights) / "examples", ROOT / "weights" / "examples"):
        if folder.is_dir():
            return folder
    return None


def _sr_tab(h: DemoHandlers, examples: Path | None) -> None:
    names = list(h.models.sr)
    _missing("sr", names)
    scale = int(h.models.sr[names[0]].desc["kwargs"].get("scale", 4)) if names else 4
    with gr.Column(visible=bool(names)), gr.Row():
        with gr.Column():
            image = _upload("Low-resolution image", "sr-input")
            model = gr.Dropdown(names, value=names[0] if names else None, label="Model")
            outscale = gr.Slider(1, 8, value=scale, step=0.5, label="Output scale",
                                 info=f"the model upscales ×{scale}; other scales resize its output")
            tile = gr.Slider(0, 1024, value=256, step=64, label="Tile size (input pixels, 0 = one pass)",
                             info=f"inputs over {h.max_pixels / 1e6:g} MP are always tiled")
            run = gr.Button("Upscale", variant="primary", elem_id="sr-run")
            found = sorted(examples.glob("sr_*.png")) if examples else []
            if found:
                gr.Examples([[str(p)] for p in found], inputs=[image], label="Bundled example (CC0)")
        with gr.Column():
            compare = gr.ImageSlider(label="Bicubic | super-resolved (drag to compare)", type="filepath",
                                     format="png", elem_id="sr-output")
            download = gr.File(label="Full-resolution PNG", elem_id="sr-file")
            status = gr.Markdown(elem_id="sr-status")
    run.click(h.upscale, [image, model, outscale, tile], [compare, download, status], api_name="upscale")


def _spade_tab(h: DemoHandlers, examples: Path | None) -> None:
    names = list(h.models.spade)
    _missing("spade", names)
    first = h.models.spade[names[0]] if names else None

    def brush(name: str | None) -> gr.Brush:
        pipe = h.models.spade.get(name or "") or first
        colours = [hex_colour(c) for c in pipe.palette] if pipe is not None else ["#000000"]
        return gr.Brush(colors=colours, default_color=colours[min(1, len(colours) - 1)], color_mode="fixed")

    with gr.Column(visible=bool(names)), gr.Row():
        with gr.Column():
            label_map = _upload("Label map: integer ids (palette or grey PNG) or the legend's colours", "spade-input")
            facades = first is not None and any(p.desc.get("label_set") == "cmp_facades"
                                                for p in h.models.spade.values())
            found = sorted(examples.glob("facade_*.png")) if examples and facades else []
            if found:
                gr.Examples([[str(p)] for p in found], inputs=[label_map], label="Bundled examples (CC0)")
            model = gr.Dropdown(names, value=names[0] if names else None, label="Model")
            seed = gr.Number(0, precision=0, label="Seed (style of models with an image encoder)")
            editor = CheckedEditor(label="Paint over the label map (optional; brush colours are the classes)",
                                    type="numpy", image_mode="RGBA", format="png", sources=[], layers=False,
                                    transforms=(), brush=brush(None), eraser=gr.Eraser(), elem_id="spade-editor")
            editor.max_pixels = h.max_pixels
            run = gr.Button("Generate photo", variant="primary", elem_id="spade-run")
        with gr.Column():
            legend = gr.HTML(legend_html(first) if first is not None else "", elem_id="spade-legend")
            used = gr.Image(label="Label map used", format="png", interactive=False, elem_id="spade-used", height=300)
            photo = gr.Image(label="Photo", format="png", interactive=False, elem_id="spade-output", height=300)
            status = gr.Markdown(elem_id="spade-status")

    def on_model(name: str | None, path: str | None) -> tuple[str, Any]:
        pipe = h.models.spade.get(name or "")
        return (legend_html(pipe) if pipe else "",
                gr.ImageEditor(value=h.label_editor_value(path, name), brush=brush(name)))

    label_map.change(h.label_editor_value, [label_map, model], editor, api_visibility="private")
    model.change(on_model, [model, label_map], [legend, editor], api_visibility="private")
    run.click(h.label_to_photo, [label_map, model, seed, editor], [used, photo, status], api_name="label_to_photo")


def _stargan_tab(h: DemoHandlers) -> None:
    names = list(h.models.stargan)
    _missing("stargan", names)
    radios: list[gr.Radio] = []
    spans: dict[str, tuple[int, int]] = {}
    boxes = []
    with gr.Column(visible=bool(names)):
        gr.Markdown(FACE_LICENSE_NOTE)
        with gr.Row():
            with gr.Column():
                face = _upload("Face photo", "stargan-input")
                model = gr.Dropdown(names, value=names[0] if names else None, label="Model")
                for name, pipe in h.models.stargan.items():
                    with gr.Column(visible=name == names[0]) as box:
                        if pipe.classifier is None:
                            gr.Markdown("No attribute classifier is published for this model, so it cannot tell "
                                        "which attributes the photo already has: **every attribute must be set**.")
                        else:
                            gr.Markdown(f"Attributes left on *keep* take the photo's own values, read by the "
                                        f"attribute classifier `{h.models.classifiers[name]}`.")
                        start = len(radios)
                        for c in attribute_controls(pipe):
                            radios.append(gr.Radio(list(c.choices), value=c.value, label=c.label))
                        spans[name] = (start, len(radios))
                    boxes.append(box)
                targets = gr.JSON(value={}, visible=False, label="targets")
                run = gr.Button("Change attributes", variant="primary", elem_id="stargan-run")
            with gr.Column():
                result = gr.Image(label="Result (same size as the input)", format="png", interactive=False,
                                  elem_id="stargan-output", height=320)
                status = gr.Markdown(elem_id="stargan-status")

    def on_model(name: str | None) -> list[Any]:
        return [gr.Column(visible=n == name) for n in names]

    def collect(name: str | None, *choices: str | None) -> dict[str, int]:
        start, end = spans.get(name or "", (0, 0)) if names else (0, 0)
        return h.attribute_targets(name, *choices[start:end])

    if boxes:
        model.change(on_model, model, boxes, api_visibility="private")
    run.click(collect, [model, *radios], targets, api_visibility="private").success(
        h.change_attributes, [face, model, targets], [result, status], api_name="change_attributes")


def build_demo(handlers: DemoHandlers, examples: Path | None = None) -> gr.Blocks:
    """The page: one tab per task; each button is a named API endpoint."""
    with gr.Blocks(title="restore demo", analytics_enabled=False, delete_cache=(3600, 3600)) as demo:
        gr.Markdown("# restore: image-restoration GANs\n" + handlers.models.summary())
        with gr.Tabs():
            with gr.Tab("Super-resolution", id="sr"):
                _sr_tab(handlers, examples)
            with gr.Tab("Label → photo", id="spade"):
                _spade_tab(handlers, examples)
            with gr.Tab("Attribute transfer", id="stargan"):
                _stargan_tab(handlers)
    return demo


def make_demo(weights: str | Path = "weights", device: str = "auto", max_pixels: int = 4_000_000,
              concurrency: int = 1) -> gr.Blocks:
    """Load every published model once and build the queued page (what ``main`` launches; tests use it too)."""
    handlers = DemoHandlers(load_models(weights, device), max_pixels=max_pixels)
    demo = build_demo(handlers, examples_folder(weights))
    demo.queue(default_concurrency_limit=concurrency)
    return demo


def parse_args(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> argparse.Namespace:
    """Command line, then Gradio's environment variables (``env``, default ``os.environ``), then the defaults."""
    env = os.environ if env is None else env
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--weights", default="weights", help="folder of published models (.safetensors + .yml card)")
    p.add_argument("--host", help=f"address to listen on (0.0.0.0: every interface; default: $GRADIO_SERVER_NAME, "
                                  f"else {DEFAULT_HOST})")
    p.add_argument("--port", type=int, help=f"port (default: $GRADIO_SERVER_PORT, else {DEFAULT_PORT})")
    p.add_argument("--device", default="auto", help="auto (CUDA fp16 when a GPU is present, else CPU), cpu, cuda:0")
    p.add_argument("--max-pixels", type=int, default=4_000_000,
                   help="larger SR inputs are tiled; larger label maps and faces are refused")
    p.add_argument("--concurrency", type=int, default=1, help="requests processed at once per endpoint")
    p.add_argument("--share", action="store_true", help="also open a public gradio.live link")
    args = p.parse_args(argv)
    if args.max_pixels < 1 or args.concurrency < 1:
        p.error("--max-pixels and --concurrency must be positive")
    if not Path(args.weights).is_dir():  # else the page would start with no models and say nothing
        p.error(f"--weights {args.weights}: no such folder (a folder of .safetensors model files; default: weights)")
    if args.host is None:
        args.host = env.get("GRADIO_SERVER_NAME", "").strip() or DEFAULT_HOST
    if args.port is None:
        text = env.get("GRADIO_SERVER_PORT", "").strip()
        if not text:
            args.port = DEFAULT_PORT
        elif text.isdigit() and 0 < int(text) < 65536:
            args.port = int(text)
        else:
            p.error(f"GRADIO_SERVER_PORT must be a port number (1-65535), got {text!r}: fix or unset it, or pass "
                    "--port")
    elif not 0 < args.port < 65536:
        p.error(f"--port must be a port number (1-65535), got {args.port}")
    return args


def launch_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """What ``main`` passes to ``demo.launch``: the address and port resolved by :func:`parse_args`, the upload
    limit, and the bundled examples as the only extra folder Gradio may serve."""
    examples = examples_folder(args.weights)
    return {"server_name": args.host, "server_port": args.port, "share": args.share, "max_file_size": MAX_UPLOAD,
            "allowed_paths": [str(examples)] if examples else None}


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # Gradio's own start-up probes
    demo = make_demo(args.weights, args.device, args.max_pixels, args.concurrency)
    demo.launch(**launch_kwargs(args))


if __name__ == "__main__":
    main()
