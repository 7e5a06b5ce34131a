import random
from pathlib import Path

import gradio as gr
import modules.scripts as scripts
from modules.processing import fix_seed
from modules.shared import opts

from sd_dynamic_prompts_like.generator import generate

BASE_DIR = Path(scripts.basedir())


class Script(scripts.Script):
    def title(self):
        return "Dynamic Prompts"

    def show(self, is_img2img):
        return scripts.AlwaysVisible

    def ui(self, is_img2img):
        with gr.Group(elem_id="dynamic-prompts"), gr.Accordion("Dynamic Prompts", open=False):
            is_enabled = gr.Checkbox(label="Dynamic Prompts enabled", value=True, elem_id=self.elem_id("on"))
            fixed_seed = gr.Checkbox(label="Fixed seed", value=False)
        return [is_enabled, fixed_seed]

    def process(self, p, is_enabled, fixed_seed):
        if not is_enabled:
            return
        fix_seed(p)
        wildcard_dir = Path(getattr(opts, "wildcard_dir", "") or BASE_DIR / "wildcards")
        original_prompt = p.all_prompts[0] if p.all_prompts else p.prompt
        prompts = []
        for index in range(len(p.all_prompts)):
            seed = p.all_seeds[0 if fixed_seed else index]
            prompts.append(generate(original_prompt, wildcard_dir, random.Random(seed)))
        p.all_prompts = prompts
        p.all_hr_prompts = list(prompts)
        if original_prompt != prompts[0]:
            p.extra_generation_params["Template"] = original_prompt
