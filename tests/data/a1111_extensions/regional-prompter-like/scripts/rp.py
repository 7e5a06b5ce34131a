# Same kind of imports as regional-prompter's scripts/rp.py.
import ldm.modules.attention as atm  # noqa: F401
import modules.scripts as scripts
from modules import shared  # noqa: F401


class Script(scripts.Script):
    def title(self):
        return "Regional Prompter"
