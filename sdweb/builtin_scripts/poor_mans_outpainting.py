"""Poor man's outpainting (A1111's scripts/poor_mans_outpainting.py, img2img): the image on a larger canvas,
the new area inpainted in one job.

A1111's arguments, in order: pixels, mask_blur, inpainting_fill (index), direction (list of left/right/up/down).
"""

from __future__ import annotations

from typing import Any

from sdweb.extensions.api import OUTPAINT_DIRECTIONS, Processing, Script, UserError, outpaint_canvas

MASKED_CONTENT = ("fill", "original", "latent noise", "latent nothing")


class PoorMansOutpainting(Script):
    def title(self) -> str:
        return "Poor man's outpainting"

    def show(self, is_img2img: bool) -> bool:
        return is_img2img

    def ui(self, is_img2img: bool) -> list[Any]:
        import gradio as gr
        pixels = gr.Slider(label="Pixels to expand", minimum=8, maximum=256, step=8, value=128,
                           elem_id="script_outpainting_pixels")
        mask_blur = gr.Slider(label="Mask blur", minimum=0, maximum=64, step=1, value=4,
                              elem_id="script_outpainting_mask_blur")
        fill = gr.Radio(label="Masked content", choices=list(MASKED_CONTENT), value="fill", type="index",
                        elem_id="script_outpainting_inpainting_fill")
        direction = gr.CheckboxGroup(label="Outpainting direction", choices=list(OUTPAINT_DIRECTIONS),
                                     value=list(OUTPAINT_DIRECTIONS), elem_id="script_outpainting_direction")
        return [pixels, mask_blur, fill, direction]

    def before_process(self, p: Processing, pixels: Any = 128, mask_blur: Any = 4, fill: Any = 0,
                       direction: Any = OUTPAINT_DIRECTIONS, *_: Any) -> None:
        if not p.init_images:
            raise UserError("Poor man's outpainting needs an init image.", code="missing_image")
        directions = [direction] if isinstance(direction, str) else list(direction or [])
        try:
            canvas = outpaint_canvas(p.init_images[0], int(pixels), directions, int(mask_blur))
        except ValueError as error:
            raise UserError(f"Poor man's outpainting: {error}", code="invalid_script_args") from None
        fill_index = MASKED_CONTENT.index(fill) if isinstance(fill, str) and fill in MASKED_CONTENT else int(fill)
        changes = {"init_images": [canvas.image], "mask": canvas.mask, "width": canvas.image.width,
                   "height": canvas.image.height, "inpaint_full_res": False, "mask_blur_x": int(mask_blur),
                   "mask_blur_y": int(mask_blur), "inpainting_fill": fill_index, "inpainting_mask_invert": 0}
        for name, value in changes.items():
            setattr(p, name, value)  # validated: a canvas over the size limit is refused with its field
        p.extra_generation_params["Script"] = self.title()
