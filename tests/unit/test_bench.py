"""`python -m sdweb.bench`: section selection, the table, the JSON report; no real benchmark runs here."""

import json
from datetime import UTC, datetime

import pytest

from sdweb.bench import __main__ as bench_main
from sdweb.bench import gpu
from sdweb.bench.overhead import interleaved
from sdweb.bench.report import SECTIONS, Row, SectionResult, build_report, format_table, parse_sections


@pytest.mark.parametrize(("only", "expected"), [
    (None, list(SECTIONS)),
    ("", list(SECTIONS)),
    ("gpu,overhead", ["overhead", "gpu"]),  # canonical order, whatever order was asked
    (" Startup , switching,", ["startup", "switching"]),
    ("gpu,gpu", ["gpu"]),
])
def test_parse_sections(only, expected):
    assert parse_sections(only) == expected


def test_unknown_section_is_refused():
    with pytest.raises(ValueError, match="speed"):
        parse_sections("overhead,speed")
    with pytest.raises(SystemExit) as exit_info:
        bench_main.main(["--only", "speed"])
    assert exit_info.value.code == 2


def _sections():
    overhead = SectionResult("overhead", [
        Row("overhead", "tiny service vs bare", 1.01, "s", 1.0, "ratio <= 1.02", True),
        Row("overhead", "full service vs bare", 2.2, "s", 2.0, "ratio <= 1.02", False, note="noisy"),
        Row("overhead", "no reference", 0.5, "s"),
    ], details={"raw": [1, 2]})
    return [overhead, SectionResult("gpu", skipped="no CUDA device"),
            SectionResult("startup", skipped="failed: OSError: boom\nTraceback line")]


def test_table_has_values_ratios_verdicts_and_skips():
    table = format_table(_sections())
    lines = table.splitlines()
    assert lines[0].split() == ["section", "metric", "ours", "reference", "ratio", "unit", "goal"]
    tiny = next(line for line in lines if "tiny service" in line)
    assert "1.010" in tiny and "1.000" in tiny and tiny.rstrip().endswith("met")
    full = next(line for line in lines if "full service" in line)
    assert "1.100" in full and full.rstrip().endswith("MISSED")
    alone = next(line for line in lines if "no reference" in line)
    assert alone.split()[-2:] == ["-", "s"]  # no reference, no ratio, no goal
    assert "gpu  skipped: no CUDA device" in lines
    assert "startup  skipped: failed: OSError: boom" in lines  # first line of the reason only
    assert "Traceback line" not in table
    assert "overhead/full service vs bare: noisy" in table


def test_report_json_round_trips():
    report = build_report(_sections(), ["--only", "overhead,gpu"], {"nproc": 2},
                          when=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC))
    again = json.loads(json.dumps(report))
    assert again["date"] == "2026-01-02T03:04:05+00:00"
    assert again["command"] == "python -m sdweb.bench --only overhead,gpu"
    assert again["machine"] == {"nproc": 2}
    assert list(again["sections"]) == ["overhead", "gpu", "startup"]
    assert again["sections"]["gpu"] == {"skipped": "no CUDA device", "rows": [], "details": {}}
    first = again["sections"]["overhead"]["rows"][0]
    assert first["metric"] == "tiny service vs bare" and first["met"] is True
    assert first["ratio"] == pytest.approx(1.01)
    assert again["sections"]["overhead"]["rows"][2]["ratio"] is None


def test_interleaved_rotates_the_order():
    calls = []
    variants = {name: (lambda name=name: calls.append(name)) for name in ("ours", "bare", "queue")}
    ticks = iter(range(100))
    times = interleaved(variants, 3, clocks={"wall": lambda: next(ticks)})
    assert calls == ["ours", "bare", "queue", "bare", "queue", "ours", "queue", "ours", "bare"]
    assert {name: len(values) for name, values in times["wall"].items()} == {"ours": 3, "bare": 3, "queue": 3}
    assert all(value == 1 for values in times["wall"].values() for value in values)


def test_a_failing_section_is_recorded_and_the_others_run():
    def broken():
        raise RuntimeError("no luck")

    results = bench_main.run_sections(["overhead", "gpu"], {
        "overhead": broken, "gpu": lambda: SectionResult("gpu", skipped="no CUDA device")})
    assert [r.name for r in results] == ["overhead", "gpu"]
    assert results[0].skipped == "failed: RuntimeError: no luck"
    assert "RuntimeError" in results[0].details["error"]


def test_gpu_section_skips_without_cuda(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(gpu, "cuda_reason", lambda: "no CUDA device")
    out = tmp_path / "bench.json"
    assert bench_main.main(["--only", "gpu", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "gpu  skipped: no CUDA device" in printed
    report = json.loads(out.read_text())
    assert report["sections"]["gpu"]["skipped"] == "no CUDA device"
    assert report["sections"]["gpu"]["details"] == {"skipped": "no CUDA device"}
    assert report["machine"]["nproc"] >= 1
    assert list(report["sections"]) == ["gpu"]


def test_new_sections_are_selectable():
    assert parse_sections("memory,coldstart") == ["coldstart", "memory"]
    assert {"coldstart", "memory"} <= set(bench_main.section_runners(bench_main._parser().parse_args([])))


def _cold(wall, cpu, rss_gib, imports, state, load, image):
    return {"wall": wall, "cpu": cpu, "peak_rss_bytes": rss_gib * 2**30,
            "phases": {"imports": imports, "app_state": state, "load": load, "image": image}}


def test_coldstart_rows_take_medians_and_the_ratio():
    from sdweb.bench.coldstart import coldstart_rows

    runs = {"sdweb": [_cold(30, 40, 6, 5, 2, 10, 13), _cold(28, 38, 6, 5, 1, 9, 13), _cold(90, 39, 7, 5, 1, 9, 13)],
            "bare": [_cold(27, 36, 6, 6, 0, 9, 12), _cold(26, 37, 5, 6, 0, 8, 12), _cold(29, 35, 6, 6, 0, 9, 12)]}
    rows = {row.metric: row for row in coldstart_rows(runs)}
    wall = rows["process start -> first image (wall)"]
    assert (wall.value, wall.reference, wall.met) == (30, 27, False)  # the outlier 90 s does not count
    cpu = rows["process start -> first image (cpu)"]
    assert (cpu.value, cpu.reference) == (39, 36)
    assert rows["peak RSS of the process"].value == 6
    assert rows["phase: app_state"].reference is None  # the bare script has no app state
    assert rows["phase: load"].value == 9
    assert not any(metric.startswith("same with --no-hashing") for metric in rows)  # no such runs
    even = {"sdweb": [_cold(10, 10, 1, 1, 1, 1, 1)], "bare": [_cold(10, 11, 1, 1, 0, 1, 1)],
            "sdweb-nohash": [_cold(8, 9, 1, 1, 1, 1, 1), _cold(9, 8, 1, 1, 1, 1, 1), _cold(7, 7, 1, 1, 1, 1, 1)]}
    rows = {row.metric: row for row in coldstart_rows(even)}
    assert all(row.met for row in rows.values() if row.goal)
    nohash = rows["same with --no-hashing (wall)"]
    assert (nohash.value, nohash.reference, nohash.goal) == (8, 10, "")  # shown beside, not a goal


def test_memory_rows_measure_growth_over_the_baseline():
    from sdweb.bench.memory import memory_rows

    gib = 2**30
    runs = {"sdweb": [{"baseline": 1 * gib, "peak": 5.5 * gib, "settled": 5.1 * gib, "weights": 4 * gib,
                       "baseline_anon": 0.5 * gib, "peak_anon": 4.5 * gib}],
            "bare": [{"baseline": 1 * gib, "peak": 7.4 * gib, "settled": 5.2 * gib, "weights": 4 * gib}]}
    rows = {row.metric: row for row in memory_rows("SD 1.5", runs)}
    peak = rows["SD 1.5 sdweb: peak RSS growth while loading"]
    assert (peak.value, peak.reference, peak.met) == (4.5, 4, True)  # 1.125x <= 1.15x
    settled = rows["SD 1.5 sdweb: settled RSS growth after load"]
    assert (settled.value, settled.met) == (4.1, True)  # 1.025x <= 1.05x
    assert rows["SD 1.5 bare diffusers: peak RSS growth while loading"].met is False  # 1.6x
    assert rows["SD 1.5 sdweb: peak private (anonymous) RSS growth"].value == 4
    assert "SD 1.5 bare diffusers: peak private (anonymous) RSS growth" not in rows  # not sampled there


def test_read_status_parses_kib_fields():
    from sdweb.bench.memory import read_status

    text = "Name:\tpython\nVmHWM:\t  2048 kB\nVmRSS:\t  1024 kB\n"
    assert read_status("VmRSS", text) == 1024 * 1024
    assert read_status("VmHWM", text) == 2048 * 1024
    with pytest.raises(KeyError):
        read_status("VmSwap", text)
    assert read_status("VmRSS") > 0  # this process, from /proc
