"""The web demo: its handlers on tiny random models written to tmp_path (no server, no shared data), then the real
app served over HTTP and driven through gradio_client."""

from __future__ import annotations

import socket
import struct
import threading
import time
import zlib
from pathlib import Path

import gradio as gr
import numpy as np
import pytest
import torch
import yaml
from PIL import Image as PILImage

from restore.data.io import read_image, write_image
from restore.data.labels import CMP_FACADES_CLASSES, LABEL_SETS
from restore.demo import (
    KEEP,
    NO_MODEL,
    DemoHandlers,
    attribute_controls,
    ids_from_painting,
    load_models,
    targets_from_choices,
)
from restore.engine.weights import save_generator
from restore.hub.cards import make_card, write_card

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "weights" / "examples"
ATTRS = ["Male", "Age_0-19", "Age_20-39", "Age_40-59", "Age_60+"]
GROUPS = [[1, 2, 3, 4]]
FACADES = LABEL_SETS["cmp_facades"]
# gradio's queue calls a pandas API that pandas 3 deprecates; nothing of ours
pytestmark = pytest.mark.filterwarnings("ignore::Warning:gradio.queueing")


# ------------------------------------------------------------------------------------------------- tiny models
def _publish(folder: Path, module: torch.nn.Module, name: str, arch: str, kwargs: dict, task: str,
             extra: dict) -> None:
    path = save_generator(module, folder / f"{name}.safetensors", arch, kwargs, task, extra)
    desc = {"arch": arch, "kwargs": kwargs, "task": task, **extra}
    card = make_card(name, path, desc, {"task": task}, data={"source": "none (random weights)", "license": "CC0"},
                     training={"steps": 0}, metrics={})
    write_card(folder / f"{name}.yml", card)


def write_tiny_models(folder: Path, classifier: bool = False, tasks: tuple[str, ...] = ("sr", "spade", "stargan"),
                      seed: int = 0) -> Path:
    """Randomly initialised SR (x4), SPADE (CMP Facades, 64x64) and StarGAN (UTKFace attributes, 32 px) models,
    published with cards into ``folder``; ``classifier`` adds an attribute classifier for the StarGAN model."""
    import restore.archs  # noqa: F401  (fills the registry)
    from restore.registry import GENERATORS

    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    if "sr" in tasks:
        kw = {"channels": 8, "num_blocks": 1, "scale": 4}
        _publish(folder, GENERATORS.build("srresnet", **kw), "tiny-sr", "srresnet", kw, "sr", {})
    if "spade" in tasks:
        kw = {"label_channels": 12, "ngf": 4, "crop_size": 64, "spade_hidden": 8}
        extra = {"label_set": "cmp_facades", "num_classes": 12, "use_instance": False,
                 "class_names": list(CMP_FACADES_CLASSES), "palette": FACADES.palette.tolist()}
        _publish(folder, GENERATORS.build("spade", **kw), "tiny-spade", "spade", kw, "spade", extra)
    if "stargan" in tasks:
        kw = {"num_attributes": 5, "ngf": 8, "num_res_blocks": 1}
        extra = {"attribute_names": ATTRS, "exclusive_groups": GROUPS, "image_size": 32}
        _publish(folder, GENERATORS.build("stargan", **kw), "tiny-stargan", "stargan", kw, "stargan", extra)
    if classifier:
        kw = {"num_attributes": 5, "width": 4, "num_stages": 3}
        extra = {"attribute_names": ATTRS, "exclusive_groups": GROUPS}
        _publish(folder, GENERATORS.build("attribute_classifier", **kw), "tiny-attributes", "attribute_classifier",
                 kw, "attributes", extra)
    return folder


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    return write_tiny_models(tmp_path_factory.mktemp("weights"))


@pytest.fixture(scope="module")
def handlers(weights, tmp_path_factory) -> DemoHandlers:
    return DemoHandlers(load_models(weights, "cpu"), out_dir=tmp_path_factory.mktemp("out"))


def photo(h: int = 24, w: int = 36, seed: int = 0) -> np.ndarray:
    """A smooth non-constant (h, w, 3) float image."""
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    rng = np.random.default_rng(seed)
    return np.clip(np.stack([xx, yy, 0.5 + 0.3 * np.sin(6 * xx)], -1) + rng.normal(0, 0.03, (h, w, 3)), 0, 1)


def png(tmp_path: Path, name: str = "in.png", **kw) -> str:
    path = tmp_path / name
    write_image(path, kw.pop("rgb", photo()), **kw)
    return str(path)


def load(path: str) -> np.ndarray:
    """An image the app returned, as a uint8 array."""
    with PILImage.open(path) as pil:
        return np.asarray(pil)


def not_constant(a: np.ndarray) -> bool:
    return float(np.asarray(a, np.float64).std()) > 1e-3


def finish_within(seconds: float, call, *args):
    """``call(*args)`` in a daemon thread: its result, or its exception re-raised. The test fails when the call is
    still running after ``seconds`` (a regression must fail the test, not hang the suite for hours)."""
    box: dict = {}

    def run() -> None:
        try:
            box["value"] = call(*args)
        except BaseException as err:  # re-raised in the test's own thread
            box["error"] = err

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(seconds)
    if worker.is_alive():
        pytest.fail(f"{getattr(call, '__name__', call)} was still running after {seconds:g} s")
    if "error" in box:
        raise box["error"]
    return box["value"]


@pytest.fixture(scope="module")
def huge_png(tmp_path_factory) -> str:
    """A real 5000×5000 PNG (25 MP, flat colour: 84 KB on disk): ×4 the model would compute 20000×20000."""
    path = tmp_path_factory.mktemp("huge") / "huge.png"
    PILImage.new("RGB", (5000, 5000), (90, 120, 200)).save(path)
    return str(path)


def png_header_only(path: Path, width: int, height: int) -> str:
    """A PNG whose header claims ``width``×``height`` followed by a few bytes of pixel data: a decompression
    bomb's shape (decoding it would allocate for the claimed size before finding the data short)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 4096))
                     + chunk(b"IEND", b""))
    return str(path)


# ------------------------------------------------------------------------------------------------- loading
def test_models_load_once_on_the_cpu(handlers):
    m = handlers.models
    assert list(m.sr) == ["tiny-sr"] and list(m.spade) == ["tiny-spade"] and list(m.stargan) == ["tiny-stargan"]
    assert m.device.type == "cpu" and not m.half and not m.problems
    assert "cpu" in m.summary() and "super-resolution: 1" in m.summary()


def test_every_task_without_a_model_says_so(tmp_path):
    empty = DemoHandlers(load_models(tmp_path, "cpu"), out_dir=tmp_path / "out")
    calls = [lambda: empty.upscale(png(tmp_path)), lambda: empty.label_to_photo(str(EXAMPLES / "facade_labels.png")),
             lambda: empty.change_attributes(png(tmp_path), None, {"Male": 1})]
    for call in calls:
        with pytest.raises(gr.Error, match=NO_MODEL):
            call()
    from app import build_demo

    config = build_demo(empty).get_config_file()
    missing = [c for c in config["components"] if c.get("props", {}).get("elem_id", "").endswith("-missing")]
    assert len(missing) == 3 and all(c["props"]["visible"] and NO_MODEL in c["props"]["value"] for c in missing)


def test_a_broken_weights_file_is_reported_and_the_rest_still_load(tmp_path):
    write_tiny_models(tmp_path, tasks=("sr", "spade"))
    (tmp_path / "tiny-spade.safetensors").write_bytes(b"not safetensors")
    models = load_models(tmp_path, "cpu")
    assert list(models.sr) == ["tiny-sr"] and not models.spade
    assert "tiny-spade.safetensors" in models.problems[0] and "could not load" in models.summary()


# ------------------------------------------------------------------------------------------------- upscale
def test_upscale_gives_full_resolution_png_and_comparison(handlers, tmp_path):
    (before, after), out, status = handlers.upscale(png(tmp_path), "tiny-sr", 4, 256)
    before, after = load(before), load(after)
    assert before.shape == after.shape == (96, 144, 3) and before.dtype == np.uint8
    assert not_constant(after) and not np.array_equal(before, after)
    result = read_image(out)
    assert result.rgb.shape == (96, 144, 3) and out.endswith(".png")
    assert "tiny-sr" in status and "cpu" in status and " s**" in status
    (_, after2), out2, _ = handlers.upscale(png(tmp_path), "tiny-sr", 2.5, 0)
    assert read_image(out2).rgb.shape == (60, 90, 3) and load(after2).shape == (60, 90, 3)


def test_upscale_keeps_alpha_grey_and_16_bits(handlers, tmp_path):
    alpha = np.linspace(0, 1, 24 * 36).reshape(24, 36)
    (_, after), out, _ = handlers.upscale(png(tmp_path, "rgba.png", alpha=alpha), None, 4, 256)
    assert load(after).shape == (96, 144, 4) and read_image(out).alpha is not None
    grey = np.repeat(photo()[..., :1], 3, 2)
    (_, after), out, status = handlers.upscale(png(tmp_path, "grey.png", rgb=grey, grey=True), None, 4, 256)
    after = load(after)
    assert read_image(out).grey and np.array_equal(after[..., 0], after[..., 1]) and "grey" in status
    (_, after), out, status = handlers.upscale(png(tmp_path, "deep.png", bit_depth=16), None, 4, 256)
    assert read_image(out).bit_depth == 16 and "16-bit" in status and not_constant(load(after))


def test_upscale_honours_exif_orientation(handlers, tmp_path):
    pil = PILImage.fromarray(np.round(photo(20, 40) * 255).astype(np.uint8))
    exif = pil.getexif()
    exif[0x0112] = 6  # rotate 90° on display: 20x40 stored, 40x20 shown
    pil.save(tmp_path / "rotated.jpg", exif=exif)
    (_, after), out, _ = handlers.upscale(str(tmp_path / "rotated.jpg"), None, 4, 256)
    assert load(after).shape == (160, 80, 3) and read_image(out).rgb.shape == (160, 80, 3)


def test_upscale_limits(handlers, tmp_path):
    big = tmp_path / "big.png"
    PILImage.new("RGB", (2100, 2000)).save(big)  # x4 would be 67 MP
    with pytest.raises(gr.Error, match="67 MP, over this demo's limit of 64 MP"):
        handlers.upscale(str(big), None, 4, 256)
    small = DemoHandlers(handlers.models, max_pixels=500, out_dir=tmp_path / "out")
    wide = png(tmp_path, "wide.png", rgb=photo(12, 300))  # 3600 px > 500: tiled although tile 0 was asked
    _, out, status = small.upscale(wide, None, 4, 0)
    assert "tiles of 256 px" in status and "over 0.0005 MP" in status and read_image(out).rgb.shape[:2] == (48, 1200)
    with pytest.raises(gr.Error, match="tile size"):
        handlers.upscale(png(tmp_path), None, 4, 16)
    with pytest.raises(gr.Error, match="output scale"):
        handlers.upscale(png(tmp_path), None, -1, 256)
    with pytest.raises(gr.Error, match="Unknown super-resolution model 'nope'; available: tiny-sr"):
        handlers.upscale(png(tmp_path), "nope", 4, 256)
    with pytest.raises(gr.Error, match="Upload an image first"):
        handlers.upscale(None)


def test_a_huge_upload_is_refused_by_what_the_model_computes(weights, huge_png, tmp_path):
    """Output scale 1 gives a 25 MP result, but the ×4 model computes 400 MP first (hours of CPU, 7 GB): refused
    from the header before anything is decoded; the next request is served."""
    h = DemoHandlers(load_models(weights, "cpu"), out_dir=tmp_path / "out")  # own models: a regression holds their lock
    start = time.perf_counter()
    with pytest.raises(gr.Error) as err:
        finish_within(2, h.upscale, huge_png, None, 1, 256)
    assert time.perf_counter() - start < 2
    message = err.value.message
    assert "huge.png is 5000×5000" in message and "20000×20000 = 400 MP" in message, message
    assert "limit of 64 MP" in message and "smaller image" in message and "downscale" in message, message
    _, out, status = finish_within(5, h.upscale, png(tmp_path), None, 4, 256)
    assert read_image(out).rgb.shape == (96, 144, 3) and "tiny-sr" in status
    small = DemoHandlers(h.models, max_output_pixels=10_000, out_dir=tmp_path / "out")  # 625 px inputs at ×4
    with pytest.raises(gr.Error, match=r"in.png is 36×24 \(0.000864 MP\): .*144×96 = 0.0138 MP") as err:
        small.upscale(png(tmp_path), None, 0.5, 0)  # an 0.0002 MP result, but the model computes 0.01 MP
    assert "at most 0.000625 MP, e.g. 25×25" in err.value.message


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")  # Pillow's, for the 144 MP header
def test_headers_claiming_huge_sizes_are_refused_before_decoding(handlers, tmp_path):
    """Decompression bombs: every endpoint reads the header's size and refuses before decoding a pixel."""
    bomb = png_header_only(tmp_path / "bomb.png", 100_000, 100_000)  # 10 000 MP: over Pillow's own limit
    big = png_header_only(tmp_path / "big.png", 12_000, 12_000)  # 144 MP: under it (Pillow only warns)
    full = {"Male": 1, "Age_20-39": 1}
    for path, claim in ((bomb, "10000 MP"), (big, "12000×12000")):
        name = Path(path).name
        calls = [(handlers.upscale, path, None, 1, 256), (handlers.label_to_photo, path),
                 (handlers.label_editor_value, path), (handlers.change_attributes, path, None, full)]
        for call, *args in calls:
            start = time.perf_counter()
            with pytest.raises(gr.Error) as err:
                finish_within(2, call, *args)
            assert time.perf_counter() - start < 2
            message = err.value.message
            assert name in message and claim in message and "damaged" not in message, message
            assert "smaller" in message, message
    small = DemoHandlers(handlers.models, max_pixels=1000, out_dir=tmp_path / "out")  # the canvas: decoded by Gradio
    canvas = {"background": np.zeros((40, 50, 3), np.uint8), "layers": []}
    with pytest.raises(gr.Error, match="The canvas is 50×40, over this demo's limit of 0.001 MP .* smaller label map"):
        small.label_to_photo(None, None, 0, canvas)


@pytest.mark.parametrize("kind", ["text", "truncated", "empty"])
def test_corrupt_uploads_get_a_friendly_error(handlers, tmp_path, kind):
    bad = tmp_path / "holiday.png"
    if kind == "text":
        bad.write_text("this is not an image")
    elif kind == "truncated":
        good = Path(png(tmp_path, "good.png", rgb=photo(64, 64)))
        bad.write_bytes(good.read_bytes()[:200])
    else:
        bad.write_bytes(b"")
    for call in (lambda: handlers.upscale(str(bad)), lambda: handlers.change_attributes(str(bad), None, {
            "Male": 1, "Age_20-39": 1}), lambda: handlers.label_to_photo(str(bad))):
        with pytest.raises(gr.Error) as err:
            call()
        message = err.value.message
        assert "holiday.png" in message and str(tmp_path) not in message, message
        assert "image" in message or "label map" in message, message


# ------------------------------------------------------------------------------------------------- label -> photo
def test_label_to_photo_from_ids_and_colours(handlers):
    used, photo_, status = handlers.label_to_photo(str(EXAMPLES / "facade_labels.png"), "tiny-spade", 0)
    used, photo_ = load(used), load(photo_)
    assert used.shape == (256, 256, 3) and photo_.shape == (64, 64, 3) and photo_.dtype == np.uint8
    assert not_constant(photo_) and "12 classes" in status and "cpu" in status
    used2, photo2, _ = handlers.label_to_photo(str(EXAMPLES / "facade_colours.png"), "tiny-spade", 0)
    assert np.array_equal(used, load(used2)) and np.array_equal(photo_, load(photo2))  # the same map in two encodings
    assert set(map(tuple, used.reshape(-1, 3))) <= set(map(tuple, FACADES.palette.tolist()))


def test_label_to_photo_grey_ids_and_errors(handlers, tmp_path):
    ids = np.ones((40, 50), np.uint8)
    ids[10:30, 10:40] = 3  # raw 3 = window
    PILImage.fromarray(ids, mode="L").save(tmp_path / "grey.png")
    used, _, status = handlers.label_to_photo(str(tmp_path / "grey.png"))
    assert load(used).shape == (40, 50, 3) and "window" in status
    ids[0, 0] = 13  # CMP Facades has values 1..12
    PILImage.fromarray(ids, mode="L").save(tmp_path / "bad_ids.png")
    with pytest.raises(gr.Error, match="bad_ids.png .*13"):
        handlers.label_to_photo(str(tmp_path / "bad_ids.png"))
    colours = FACADES.palette[np.zeros((40, 50), int)]
    colours[:5, :5] = (255, 255, 255)
    PILImage.fromarray(colours).save(tmp_path / "paint.png")
    with pytest.raises(gr.Error, match="not in the palette"):
        handlers.label_to_photo(str(tmp_path / "paint.png"))
    small = DemoHandlers(handlers.models, max_pixels=1000, out_dir=tmp_path / "out")
    with pytest.raises(gr.Error, match="256×256 = 0.1 MP, over this demo's limit"):
        small.label_to_photo(str(EXAMPLES / "facade_labels.png"))
    with pytest.raises(gr.Error, match="Upload a label map"):
        handlers.label_to_photo(None)


def test_painting_over_the_label_map(handlers):
    path = str(EXAMPLES / "facade_labels.png")
    value = handlers.label_editor_value(path, "tiny-spade")
    assert value["background"].shape == (256, 256, 3)
    layer = np.zeros((256, 256, 4), np.uint8)
    door = FACADES.palette[CMP_FACADES_CLASSES.index("door")]
    layer[100:140, 100:140] = [*door, 255]
    layer[99, 100:140] = [*door, 60]  # an anti-aliased rim, mostly transparent: ignored
    layer[140, 100:140] = [door[0] + 3, door[1], door[2], 200]  # rounding noise in a stroke: still the door
    used = load(handlers.label_to_photo(path, "tiny-spade", 0, {**value, "layers": [layer]})[0])
    assert (used[100:141, 100:140] == door).all() and not (used[99, 100:140] == door).all()
    # only the canvas (no upload): its background is decoded as colours
    used2 = load(handlers.label_to_photo(None, None, 0, {"background": used, "layers": []})[0])
    assert np.array_equal(used, used2)
    layer[10:20, 10:20] = [255, 255, 255, 255]
    with pytest.raises(gr.Error, match="not classes of this model: #ffffff"):
        handlers.label_to_photo(path, None, 0, {**value, "layers": [layer]})
    with pytest.raises(gr.Error, match="Start from a label map"):
        handlers.label_to_photo(None, None, 0, {"background": None, "layers": [layer]})


def test_painting_tolerance_never_crosses_classes():
    pal = LABEL_SETS["coco_stuff"].palette  # 183 colours: the closest pair is 32 apart
    rgba = np.concatenate([pal[None, :, :], np.full((1, len(pal), 1), 255, np.uint8)], axis=2)
    ids, mask = ids_from_painting(rgba, pal)
    assert mask.all() and (ids[0] == np.arange(len(pal))).all()


# ------------------------------------------------------------------------------------------------- attributes
def test_change_attributes_without_a_classifier(handlers, tmp_path):
    pipe = handlers.models.stargan["tiny-stargan"]
    controls = attribute_controls(pipe)
    assert [c.label for c in controls] == ["Age (one of)", "Male"]
    assert all(KEEP not in dict(c.choices).values() for c in controls)  # every attribute must be set
    assert targets_from_choices(controls, ["Age_20-39", "1"]) == {"Age_20-39": 1, "Male": 1}
    with pytest.raises(gr.Error, match="set every attribute .*missing: Age_0-19, Age_20-39"):
        handlers.change_attributes(png(tmp_path), "tiny-stargan", {"Male": 1})
    out, status = handlers.change_attributes(png(tmp_path, rgb=photo(50, 40)), "tiny-stargan",
                                             {"Male": 1, "Age_20-39": 1})
    assert load(out).shape == (50, 40, 3) and not_constant(load(out)) and "Male=1" in status and "cpu" in status
    out, _ = handlers.change_attributes(png(tmp_path), None, "Male=0, Age_60+=1")  # the CLI's syntax works too
    assert load(out).shape == (24, 36, 3)
    with pytest.raises(gr.Error, match="no attribute 'Blond'"):
        handlers.change_attributes(png(tmp_path), None, {"Blond": 1})
    with pytest.raises(gr.Error, match="must be 0, 1"):
        handlers.change_attributes(png(tmp_path), None, {"Male": 2})
    with pytest.raises(gr.Error, match="at least one attribute"):
        handlers.change_attributes(png(tmp_path), None, {"Male": KEEP})


def test_change_attributes_keeps_alpha_grey_16_bits_and_refuses_huge(handlers, tmp_path):
    full = {"Male": 0, "Age_0-19": 1}
    alpha = np.full((24, 36), 0.5)
    out = load(handlers.change_attributes(png(tmp_path, "a.png", alpha=alpha), None, full)[0])
    assert out.shape == (24, 36, 4) and (out[..., 3] == 128).all()
    grey = np.repeat(photo()[..., :1], 3, 2)
    out = load(handlers.change_attributes(png(tmp_path, "g.png", rgb=grey, grey=True), None, full)[0])
    assert np.array_equal(out[..., 0], out[..., 2])
    out = load(handlers.change_attributes(png(tmp_path, "d.png", bit_depth=16), None, full)[0])
    assert out.shape == (24, 36, 3) and not_constant(out)
    small = DemoHandlers(handlers.models, max_pixels=500, out_dir=tmp_path / "out")
    with pytest.raises(gr.Error, match="over this demo's limit of 0.0005 MP for photos"):
        small.change_attributes(png(tmp_path), None, full)


def test_change_attributes_with_a_classifier_keeps_the_rest(tmp_path):
    models = load_models(write_tiny_models(tmp_path / "w", classifier=True, tasks=("stargan",)), "cpu")
    assert models.classifiers == {"tiny-stargan": "tiny-attributes"}
    h = DemoHandlers(models, out_dir=tmp_path / "out")
    controls = attribute_controls(models.stargan["tiny-stargan"])
    assert all(c.value == KEEP for c in controls)
    assert h.attribute_targets("tiny-stargan", KEEP, "1") == {"Male": 1}
    out, status = h.change_attributes(png(tmp_path), None, {"Male": 1})
    assert load(out).shape == (24, 36, 3) and "attribute classifier" in status


# ------------------------------------------------------------------------------------------------- the server
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(weights: Path, max_pixels: int = 4_000_000, concurrency: int = 1):
    """The app of app.py on a free local port, served from a background thread; returns (demo, url)."""
    from app import make_demo

    demo = make_demo(weights, "cpu", max_pixels, concurrency)
    demo.launch(server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True,
                allowed_paths=[str(EXAMPLES)])
    return demo, demo.local_url


@pytest.fixture(scope="module")
def server(weights):
    demo, url = launch(weights)
    yield url
    demo.close()


def test_every_endpoint_over_http(server, tmp_path):
    from gradio_client import Client, handle_file

    client = Client(server, verbose=False)
    api = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    assert {"/upscale", "/label_to_photo", "/change_attributes"} <= set(api)
    names = {k: [p["parameter_name"] for p in v["parameters"]] for k, v in api.items()}
    assert names["/upscale"] == ["image", "model", "outscale", "tile"]
    assert names["/label_to_photo"] == ["label_map", "model", "seed", "drawing"]
    assert names["/change_attributes"] == ["face", "model", "targets"]

    compare, download, status = client.predict(handle_file(png(tmp_path)), "tiny-sr", 4, 256, api_name="/upscale")
    before, after = (load(p) for p in compare)
    assert before.shape == after.shape == (96, 144, 3) and not_constant(after)
    assert read_image(download).rgb.shape == (96, 144, 3) and "cpu" in status
    _, download, _ = client.predict(image=handle_file(png(tmp_path)), outscale=2, api_name="/upscale")  # by name
    assert read_image(download).rgb.shape == (48, 72, 3)

    used, photo_, status = client.predict(handle_file(str(EXAMPLES / "facade_labels.png")), "tiny-spade", 0,
                                          api_name="/label_to_photo")
    assert load(photo_).shape == (64, 64, 3) and not_constant(load(photo_))
    assert load(used).shape == (256, 256, 3) and "tiny-spade" in status

    result, status = client.predict(handle_file(png(tmp_path, rgb=photo(50, 40))), "tiny-stargan",
                                    {"Male": 1, "Age_40-59": 1}, api_name="/change_attributes")
    out = load(result)
    assert out.shape == (50, 40, 3) and not_constant(out) and "Age_40-59=1" in status


def test_a_corrupt_upload_is_an_error_and_the_server_keeps_serving(server, tmp_path):
    from gradio_client import Client, handle_file
    from gradio_client.exceptions import AppError

    client = Client(server, verbose=False)
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    for api_name in ("/upscale", "/label_to_photo"):
        with pytest.raises(AppError, match="Could not read broken.png as an image"):
            client.predict(handle_file(str(bad)), api_name=api_name)
    with pytest.raises(AppError, match="set every attribute"):
        client.predict(handle_file(png(tmp_path)), "tiny-stargan", {"Male": 1}, api_name="/change_attributes")
    _, download, _ = client.predict(handle_file(png(tmp_path)), api_name="/upscale")  # still serving
    assert read_image(download).rgb.shape == (96, 144, 3)


def test_a_huge_request_does_not_hold_up_a_small_one(weights, huge_png, tmp_path):
    """The real app at --concurrency 1 runs one /upscale at a time, the rest wait in Gradio's queue: a visitor's
    small request sent while a huge one is being handled must still come back in seconds. Two clients, as two
    visitors; the huge request is in process before the small one is sent."""
    from gradio_client import Client, handle_file
    from gradio_client.exceptions import AppError
    from gradio_client.utils import Status

    demo, url = launch(weights, concurrency=1)  # its own server and models: a regression blocks only these
    try:
        heavy_client, light_client = Client(url, verbose=False), Client(url, verbose=False)
        heavy = heavy_client.submit(handle_file(huge_png), None, 1, 256, api_name="/upscale")
        deadline = time.perf_counter() + 5
        while not heavy.done() and heavy.status().code != Status.PROCESSING:
            assert time.perf_counter() < deadline, f"the huge request never started: {heavy.status()}"
            time.sleep(0.02)
        start = time.perf_counter()
        light = light_client.submit(handle_file(png(tmp_path, rgb=photo(64, 64))), None, 4, 256, api_name="/upscale")
        try:
            _, download, _ = light.result(timeout=8)
        except TimeoutError:
            pytest.fail("the 64×64 request was still waiting after 8 s behind the huge one")
        assert time.perf_counter() - start < 8 and read_image(download).rgb.shape == (256, 256, 3)
        with pytest.raises(AppError, match="20000×20000 = 400 MP"):
            heavy.result(timeout=1)
    finally:
        demo.close()


# ------------------------------------------------------------------------------------------------- published models
def test_the_repositorys_published_models_serve_every_tab(tmp_path):
    """What `python app.py` serves: weights/ as committed, each tab run on its bundled example (or a smooth test
    image for faces, which are not bundled)."""
    models = load_models(ROOT / "weights", "cpu")
    assert not models.problems, models.problems
    h = DemoHandlers(models, out_dir=tmp_path / "out")
    if not (models.sr or models.spade or models.stargan):
        pytest.skip("weights/ holds no published model yet")
    carded = {p.stem for p in (ROOT / "weights").glob("*.yml")
              if yaml.safe_load(p.read_text()).get("task") == "sr"}
    assert set(models.sr) == carded and "sr_x4_real_san" in carded  # every SR card is offered, the real-world one too
    for name in models.sr:
        (_, after), out, status = h.upscale(str(EXAMPLES / "sr_scene.png"), name, 4, 0)
        assert read_image(out).rgb.shape == (512, 512, 3) and not_constant(load(after)) and name in status
    for name, pipe in models.spade.items():
        _, photo_, status = h.label_to_photo(str(EXAMPLES / "facade_labels.png"), name, 0)
        assert load(photo_).shape[2] == 3 and not_constant(load(photo_)) and name in status
        assert pipe.desc["label_set"] == "cmp_facades"
    for name, pipe in models.stargan.items():
        targets = {a: 0 for a in pipe.attribute_names} | {"Male": 1, "Age_60+": 1}
        out, status = h.change_attributes(png(tmp_path, rgb=photo(128, 128)), name, targets)
        assert load(out).shape == (128, 128, 3) and not_constant(load(out)) and name in status


def test_the_label_editor_checks_canvas_sizes_before_decoding(tmp_path: Path):
    """Gradio decodes the editor's background, layers and composite before any handler runs; the page's editor
    refuses an oversized or bomb-shaped canvas on its header first (as a path or as bytes)."""
    from gradio.components.image_editor import EditorData, EditorDataBlobs
    from gradio.data_classes import FileData

    from app import CheckedEditor

    editor = CheckedEditor(type="numpy", image_mode="RGBA", format="png", sources=[], layers=False, transforms=())
    editor.max_pixels = 1_000_000
    bomb = png_header_only(tmp_path / "bomb.png", 100_000, 100_000)
    big = png_header_only(tmp_path / "big.png", 2000, 2000)
    tic = time.perf_counter()
    with pytest.raises(gr.Error, match="far too large to decode"):
        editor.preprocess(EditorData(background=FileData(path=bomb), layers=[], composite=FileData(path=bomb)))
    with pytest.raises(gr.Error, match=r"2000×2000 = 4\.0 MP, over this demo's limit of 1 MP"):
        editor.preprocess(EditorData(background=FileData(path=big), layers=[], composite=None))
    editor.blob_storage["x"] = EditorDataBlobs(background=Path(big).read_bytes(), layers=[], composite=None)
    with pytest.raises(gr.Error, match=r"The canvas is 2000×2000"):
        editor.preprocess(EditorData(id="x"))
    assert time.perf_counter() - tic < 2
    small = tmp_path / "small.png"
    write_image(small, np.zeros((8, 8, 3), np.float32))
    out = editor.preprocess(EditorData(background=FileData(path=str(small)), layers=[], composite=FileData(
        path=str(small))))
    assert out["background"].shape[:2] == (8, 8)
