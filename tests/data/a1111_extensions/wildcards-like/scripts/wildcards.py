# As AUTOMATIC1111/stable-diffusion-webui-wildcards' scripts/wildcards.py (written anew for sdweb's tests).
import os
import random

from modules import script_callbacks, scripts, shared

repo_dir = scripts.basedir()


class WildcardsScript(scripts.Script):
    def title(self):
        return "Simple wildcards"

    def show(self, is_img2img):
        return scripts.AlwaysVisible

    def replace_wildcard(self, text, gen):
        if " " in text or len(text) == 0:
            return text
        path = os.path.join(repo_dir, "wildcards", text + ".txt")
        if os.path.isfile(path):
            with open(path, encoding="utf8") as file:
                return gen.choice([line.strip() for line in file if line.strip()])
        return text

    def process(self, p):
        original_prompt = p.all_prompts[0]
        for i in range(len(p.all_prompts)):
            gen = random.Random()
            gen.seed(p.all_seeds[0 if shared.opts.wildcards_same_seed else i])
            prompt = p.all_prompts[i]
            prompt = "".join(self.replace_wildcard(chunk, gen) for chunk in prompt.split("__"))
            p.all_prompts[i] = prompt
        if original_prompt != p.all_prompts[0]:
            p.extra_generation_params["Wildcard prompt"] = original_prompt


def on_ui_settings():
    shared.opts.add_option("wildcards_same_seed", shared.OptionInfo(
        False, "Use same seed for all images", section=("wildcards", "Wildcards")))


script_callbacks.on_ui_settings(on_ui_settings)
