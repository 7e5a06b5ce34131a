from modules import scripts


class FailingInstallProbe(scripts.Script):
    def title(self):
        return "Failing install probe"

    def show(self, is_img2img):
        return scripts.AlwaysVisible

    def process(self, p):
        p.extra_generation_params["Install probe"] = "ran"
