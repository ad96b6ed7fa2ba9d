"""The Gradio demo's handlers (``app.py`` lays out the page; what each button does is here), one module per tab.

Every handler is a plain function of file paths and values, so it is unit-tested without a server: loading the
published models, size limits, reading uploads and every message shown to a visitor. Nothing else in restore
imports this package (it is the only one that needs gradio).
"""

from __future__ import annotations

from pathlib import Path

from restore.demo.common import FACE_LICENSE_NOTE, KEEP, MAX_OUTPUT_PIXELS, NO_MODEL, DemoContext, Models, load_models
from restore.demo.spade import SPADETab, hex_colour, ids_from_painting, legend_html
from restore.demo.sr import SRTab
from restore.demo.stargan import StarGANTab, attribute_controls, targets_from_choices

__all__ = ["FACE_LICENSE_NOTE", "KEEP", "NO_MODEL", "DemoHandlers", "Models", "attribute_controls", "hex_colour",
           "ids_from_painting", "legend_html", "load_models", "targets_from_choices"]


class DemoHandlers(DemoContext):
    """The endpoints of the demo, gathered from the tabs. Method and parameter names are the API's (gradio_client
    uses them)."""

    def __init__(self, models: Models, max_pixels: int = 4_000_000, max_output_pixels: int = MAX_OUTPUT_PIXELS,
                 out_dir: str | Path | None = None, keep_files_s: float = 3600.0):
        super().__init__(models, max_pixels, max_output_pixels, out_dir, keep_files_s)
        self.sr, self.spade, self.stargan = SRTab(self), SPADETab(self), StarGANTab(self)
        self.upscale = self.sr.upscale
        self.label_ids = self.spade.label_ids
        self.label_editor_value = self.spade.label_editor_value
        self.apply_drawing = self.spade.apply_drawing
        self.label_to_photo = self.spade.label_to_photo
        self.attribute_targets = self.stargan.attribute_targets
        self.change_attributes = self.stargan.change_attributes
