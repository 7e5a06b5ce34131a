"""Element ids of the built-in scripts' controls: unique per tab, A1111's shape (script_txt2img_xyz_plot_...)."""

from __future__ import annotations


def tab_of(is_img2img: bool) -> str:
    return "img2img" if is_img2img else "txt2img"


def elem_prefix(is_img2img: bool, script: str) -> str:
    return f"script_{tab_of(is_img2img)}_{script}"
