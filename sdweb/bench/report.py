"""Rows, the printed table, the JSON report and section selection: pure, no benchmarks run here."""

from __future__ import annotations

import json
import os
import platform
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

SECTIONS = ("overhead", "startup", "coldstart", "memory", "switching", "gpu", "opts", "lora_compile")


@dataclass(frozen=True)
class Row:
    """One line of the table: a measured value, optionally with a reference value and a goal."""

    section: str
    metric: str
    value: float | None
    unit: str = "s"
    reference: float | None = None  # the bare-library figure measured side by side, when there is one
    goal: str = ""  # e.g. "ratio <= 1.02"
    met: bool | None = None  # None: no goal, or not measured
    note: str = ""

    @property
    def ratio(self) -> float | None:
        if self.value is None or not self.reference:
            return None
        return self.value / self.reference


@dataclass
class SectionResult:
    name: str
    rows: list[Row] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)  # raw timings and settings
    skipped: str | None = None  # why the section did not run


def parse_sections(only: str | None) -> list[str]:
    """`--only overhead,startup` -> those sections in the canonical order; None or "" -> all of them."""
    if not only:
        return list(SECTIONS)
    wanted = [part.strip().lower() for part in only.split(",") if part.strip()]
    unknown = [name for name in wanted if name not in SECTIONS]
    if unknown:
        raise ValueError(f"unknown section(s) {', '.join(unknown)}; expected some of {', '.join(SECTIONS)}")
    return [name for name in SECTIONS if name in wanted]


def median(values: Iterable[float]) -> float:
    return statistics.median(list(values))


def _number(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit in ("MiB", "GiB", "%"):
        return f"{value:.1f}"
    if value and abs(value) < 0.001:
        return f"{value:.1e}"
    if abs(value) >= 100:
        return f"{value:.1f}"
    return f"{value:.3f}"


def _verdict(met: bool | None) -> str:
    return {True: "met", False: "MISSED", None: ""}[met]


def format_table(sections: Sequence[SectionResult]) -> str:
    """A plain-text table: one line per row, skipped sections say why."""
    header = ("section", "metric", "ours", "reference", "ratio", "unit", "goal", "")
    lines: list[tuple[str, ...] | str] = [header]
    for section in sections:
        if section.skipped is not None:  # one line, outside the columns
            reason = (section.skipped.splitlines() or [""])[0][:120]
            lines.append(f"{section.name}  skipped: {reason}")
            continue
        for row in section.rows:
            ratio = row.ratio
            lines.append((row.section, row.metric, _number(row.value, row.unit), _number(row.reference, row.unit),
                          "-" if ratio is None else f"{ratio:.3f}", row.unit, row.goal, _verdict(row.met)))
    cells_only = [line for line in lines if isinstance(line, tuple)]
    widths = [max(len(line[column]) for line in cells_only) for column in range(len(header))]
    numeric = {2, 3, 4}
    out = []
    for index, line in enumerate(lines):
        if isinstance(line, str):
            out.append(line)
            continue
        cells = [cell.rjust(widths[c]) if c in numeric else cell.ljust(widths[c]) for c, cell in enumerate(line)]
        out.append("  ".join(cells).rstrip())
        if index == 0:
            out.append("  ".join("-" * width for width in widths).rstrip())
    notes = [f"  {row.section}/{row.metric}: {row.note}" for section in sections for row in section.rows if row.note]
    if notes:
        out.append("notes:")
        out.extend(notes)
    return "\n".join(out)


def machine_info() -> dict[str, Any]:
    """nproc, CPU model, RAM, torch/diffusers versions: what a reader needs to compare figures."""
    info: dict[str, Any] = {"nproc": os.cpu_count(), "platform": platform.platform(),
                            "python": platform.python_version()}
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("MemTotal:"):
                info["ram_gib"] = round(int(line.split()[1]) / 2**20, 1)
                break
    except OSError:
        pass
    try:
        import diffusers
        import torch

        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
        info["diffusers"] = diffusers.__version__
    except ImportError:
        pass
    return info


def build_report(sections: Sequence[SectionResult], argv: Sequence[str], machine: dict[str, Any],
                 when: datetime | None = None, program: str = "python -m sdweb.bench") -> dict[str, Any]:
    stamp = (when or datetime.now(UTC)).isoformat(timespec="seconds")
    return {
        "date": stamp,
        "command": " ".join([program, *argv]),
        "machine": machine,
        "sections": {
            section.name: {
                "skipped": section.skipped,
                "rows": [asdict(row) | {"ratio": row.ratio} for row in section.rows],
                "details": section.details,
            }
            for section in sections
        },
    }


def write_report(report: dict[str, Any], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(path.suffix + ".partial")
    partial.write_text(json.dumps(report, indent=1, default=str) + "\n", encoding="utf-8")
    os.replace(partial, path)
    return path
