"""A1111's `modules.shared`: `opts`, `cmd_opts`, `state`, `sd_model`, `prompt_styles` and friends over sdweb."""

from __future__ import annotations

from typing import Any

from sdweb.compat.a1111.modules.options import OptionHTML, OptionInfo, Options, categories, options_section
from sdweb.compat.a1111.modules.paths import FOLDERS
from sdweb.compat.a1111.modules.sd_models import SdModel
from sdweb.compat.a1111.world import WORLD

__all__ = ["OptionHTML", "OptionInfo", "categories", "cmd_opts", "opts", "options_section", "state"]

opts = Options()
hypernetworks: dict[str, Any] = {}  # sdweb has no hypernetworks
loaded_hypernetworks: list[Any] = []
demo = None
device = None  # replaced by devices.device on first use (see __getattr__)
interrogator = None
face_restorers: list[Any] = []
sd_upscalers: list[Any] = []


# A1111's folder flags have a default folder (its cmd_opts never holds None for them); sdweb's launch options
# keep None for a flag not given and resolve the folder into DataPaths, so these read the resolved folder.
FOLDER_FLAGS = {"data_dir": "data_dir", "models_dir": "models_dir", "embeddings_dir": "embeddings",
                "hypernetwork_dir": "hypernetworks", "lora_dir": "lora", "lyco_dir_backcompat": "lycoris",
                "lyco_dir": "lycoris", "codeformer_models_path": "codeformer", "gfpgan_models_path": "gfpgan",
                "esrgan_models_path": "esrgan", "bsrgan_models_path": "bsrgan",
                "realesrgan_models_path": "realesrgan", "dat_models_path": "dat", "scunet_models_path": "scunet",
                "swinir_models_path": "swinir", "ldsr_models_path": "ldsr", "clip_models_path": "blip",
                "ui_settings_file": "config_file", "ui_config_file": "ui_config_file"}


class CommandLineOptions:
    """`shared.cmd_opts`: sdweb's launch options under A1111's flag names, folder flags resolved as A1111 resolves
    them (FOLDER_FLAGS); flags an extension's preload.py adds read as given in the command line or at their
    defaults (preload.py), flags sdweb does not know at all as None."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        value = getattr(WORLD.launch_options, name, None)
        if value is None and name in FOLDER_FLAGS and WORLD.paths is not None:
            return str(getattr(WORLD.paths, FOLDER_FLAGS[name]))
        if name == "styles_file" and not value and WORLD.paths is not None:
            return [str(path) for path in WORLD.paths.styles_files]
        if value is None and name in WORLD.preload_values:
            return WORLD.preload_values[name]
        return value


cmd_opts = CommandLineOptions()


class State:
    """`shared.state`: the running job's progress and interrupt as A1111 names them (read-mostly)."""

    skipped = False
    job_no = 0
    textinfo: str | None = None
    current_image = None
    current_latent = None
    id_live_preview = 0
    server_start = None

    def _context(self) -> Any:
        job = WORLD.job
        return job.sdweb_p.scope.context if job is not None else None

    @property
    def job(self) -> str:
        return "" if WORLD.job is None else "txt2img"

    @property
    def job_count(self) -> int:
        return 0 if WORLD.job is None else int(WORLD.job.n_iter)

    @property
    def interrupted(self) -> bool:
        context = self._context()
        return bool(context is not None and context.interrupted)

    @property
    def sampling_step(self) -> int:
        return WORLD.sampling_step

    @property
    def sampling_steps(self) -> int:
        return WORLD.sampling_steps

    def interrupt(self) -> None:
        context = self._context()
        if context is not None and hasattr(context, "interrupt"):
            context.interrupt()

    def skip(self) -> None:
        self.interrupt()

    def nextjob(self) -> None:
        return None

    def begin(self, job: str = "(unknown)") -> None:
        return None

    def end(self) -> None:
        return None

    def set_current_image(self) -> None:
        return None

    def assign_current_image(self, image: Any) -> None:
        self.current_image = image


state = State()


class PromptStyles:
    """`shared.prompt_styles`: sdweb's styles.csv (names, and applying styles as a job does)."""

    @property
    def styles(self) -> dict[str, str]:
        return {name: name for name in (WORLD.services.style_names() if WORLD.services is not None else [])}

    def apply_styles_to_prompt(self, prompt: str, styles: list[str]) -> str:
        return WORLD.services.apply_styles(prompt, "", list(styles))[0] if WORLD.services is not None else prompt

    def apply_negative_styles_to_prompt(self, prompt: str, styles: list[str]) -> str:
        return WORLD.services.apply_styles("", prompt, list(styles))[1] if WORLD.services is not None else prompt


prompt_styles = PromptStyles()


def list_checkpoint_tiles(use_short: bool = False) -> list[str]:
    return WORLD.services.checkpoint_titles() if WORLD.services is not None else []


def refresh_checkpoints() -> None:
    return None


def __getattr__(name: str) -> Any:
    """Values A1111 computes at start (folders, the settings file) or that follow the loaded model."""
    if name == "sd_model":
        return SdModel(WORLD.loaded_model) if WORLD.loaded_model is not None else None
    if name in FOLDERS and WORLD.paths is not None:
        return str(getattr(WORLD.paths, FOLDERS[name]))
    if name == "config_filename" and WORLD.paths is not None:
        return str(WORLD.paths.config_file)
    raise AttributeError(f"module 'modules.shared' has no attribute {name!r}")
