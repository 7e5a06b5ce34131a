import random
import re
from pathlib import Path

VARIANT = re.compile(r"\{([^{}]*)\}")
WILDCARD = re.compile(r"__([\w/-]+)__")


def generate(template: str, wildcard_dir: Path, rng: random.Random) -> str:
    def wildcard(match):
        path = wildcard_dir / f"{match.group(1)}.txt"
        if not path.is_file():
            return match.group(0)
        lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        return rng.choice(lines) if lines else match.group(0)

    text = WILDCARD.sub(wildcard, template)
    while VARIANT.search(text):
        text = VARIANT.sub(lambda match: rng.choice(match.group(1).split("|")), text, count=1)
    return text
