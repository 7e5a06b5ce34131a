"""Checkpoint switching: cached switch time, cold load time and process RSS over 20 switches.

Three tiny checkpoints (SD 1.x, SD 2.x, SDXL) are switched round-robin through the generation service,
once with sd_checkpoints_limit 3 (every switch after the first round is a cache hit) and once with limit 1
(every switch unloads one model and loads the next from disk). After each switch one 1-step 64 px image is
generated (unless generate=False), so the RSS reflects a model in use. Goals: cached switch <= 1 s; RSS after
the last switch within 5 % of the RSS after the first round (the one-time imports and caches are done).
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

from sdweb.bench.report import Row, SectionResult
from sdweb.cli import parse_options
from sdweb.core.requests import Txt2ImgRequest
from sdweb.generation.service import SaveOptions
from sdweb.runtime.memory import process_rss_bytes
from sdweb.state import build_app_state
from sdweb.testing.tiny import write_tiny

CHECKPOINTS = (("sd1", "tiny-sd1.safetensors"), ("sd2", "tiny-sd2.safetensors"), ("sdxl", "tiny-sdxl.safetensors"))
NO_SAVE = SaveOptions(save_samples=False, save_grid=False)
MIB = 1024 * 1024
CACHED_GOAL_SECONDS = 1.0
RSS_GOAL_PERCENT = 5.0


def run_phase(state, limit: int, switches: int, generate: bool) -> dict:
    names = [name for _, name in CHECKPOINTS]
    state.manager.unload_all()
    rows = []
    for index in range(switches):
        name = names[index % len(names)]
        started = time.perf_counter()
        state.manager.get(name, limit=limit)
        switch_seconds = time.perf_counter() - started
        if generate:
            request = Txt2ImgRequest(prompt="a cat", steps=1, width=64, height=64, sampler_name="Euler", seed=index,
                                     override_settings={"sd_model_checkpoint": name, "sd_checkpoints_limit": limit})
            state.service.txt2img(request, None, NO_SAVE)
        rows.append({"switch": index + 1, "checkpoint": name, "seconds": switch_seconds,
                     "rss_mib": process_rss_bytes() / MIB, "loaded": len(state.manager.loaded_titles())})
    first_round = rows[len(names) - 1]["rss_mib"]
    last = rows[-1]["rss_mib"]
    later = [row["seconds"] for row in rows[len(names):]]
    return {
        "limit": limit,
        "rows": rows,
        "first_round_load_seconds": [row["seconds"] for row in rows[:len(names)]],
        "later_switch_median_seconds": statistics.median(later),
        "later_switch_max_seconds": max(later),
        "rss_after_first_round_mib": first_round,
        "rss_after_last_mib": last,
        "rss_growth_percent": 100 * (last - first_round) / first_round,
    }


def print_phase(phase: dict) -> None:
    kind = "cached (sd_checkpoints_limit 3)" if phase["limit"] > 1 else "cold (sd_checkpoints_limit 1)"
    print(f"\n== {kind}")
    print(f"{'switch':>6}  {'checkpoint':<22} {'switch s':>9} {'RSS MiB':>9} {'loaded':>6}")
    for row in phase["rows"]:
        print(f"{row['switch']:>6}  {row['checkpoint']:<22} {row['seconds']:>9.3f} {row['rss_mib']:>9.1f} "
              f"{row['loaded']:>6}")
    loads = ", ".join(f"{s:.2f}" for s in phase["first_round_load_seconds"])
    print(f"first round (cold loads): {loads} s")
    print(f"later switches: median {phase['later_switch_median_seconds']:.3f} s, "
          f"max {phase['later_switch_max_seconds']:.3f} s")
    print(f"RSS after first round {phase['rss_after_first_round_mib']:.1f} MiB, after last "
          f"{phase['rss_after_last_mib']:.1f} MiB: {phase['rss_growth_percent']:+.1f} %")


def switching_phases(switches: int, generate: bool) -> list[dict]:
    """The cached phase (limit 3), then the cold phase (limit 1)."""
    if switches <= len(CHECKPOINTS):
        raise ValueError(f"switches must be more than {len(CHECKPOINTS)} (the first round only loads)")
    with tempfile.TemporaryDirectory(prefix="sdweb-switch-") as data:
        for kind, name in CHECKPOINTS:
            write_tiny(kind, Path(data) / "models" / "Stable-diffusion" / name, seed=1)
        state = build_app_state(parse_options(["--data-dir", data], {}))
        state.settings.update({"live_previews_enable": False}, save=False)
        try:
            return [run_phase(state, limit, switches, generate) for limit in (3, 1)]
        finally:
            state.queue.shutdown()


def verdict(phases: list[dict]) -> dict:
    cached, cold = phases
    return {
        "cached_switch_ok": cached["later_switch_max_seconds"] <= CACHED_GOAL_SECONDS,
        "rss_growth_ok": all(phase["rss_growth_percent"] <= RSS_GOAL_PERCENT for phase in phases),
        "cold_load_median_seconds": statistics.median(row["seconds"] for row in cold["rows"]),
    }


def run_switching(switches: int = 20, generate: bool = True) -> SectionResult:
    phases = switching_phases(switches, generate)
    cached, cold = phases
    summary = verdict(phases)
    rows = [
        Row("switching", "cached switch (max of later switches)", cached["later_switch_max_seconds"], "s",
            goal=f"<= {CACHED_GOAL_SECONDS:g} s", met=summary["cached_switch_ok"]),
        Row("switching", "cached switch (median)", cached["later_switch_median_seconds"], "s"),
        Row("switching", "cold switch (median, limit 1)", summary["cold_load_median_seconds"], "s"),
    ]
    for phase, label in ((cached, "cached"), (cold, "cold")):
        growth = phase["rss_growth_percent"]
        rows.append(Row("switching", f"RSS growth over {switches} switches ({label})", growth, "%",
                        goal=f"<= {RSS_GOAL_PERCENT:g} %", met=growth <= RSS_GOAL_PERCENT,
                        note=f"{phase['rss_after_first_round_mib']:.0f} -> {phase['rss_after_last_mib']:.0f} MiB"))
    return SectionResult("switching", rows, {"switches": switches, "generate": generate, "phases": phases,
                                             "verdict": summary})
