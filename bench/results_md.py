#!/usr/bin/env python
"""Append the JSON results of a benchmark run (bench_models.py / bench_speed.py `--json` files in one folder) to
bench/RESULTS.md as a dated section named after the device.

    .venv/bin/python bench/results_md.py .bench/gpu bench/RESULTS.md
"""

from __future__ import annotations

import datetime
import json
import sys
from pathlib import Path


def _number(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _table(rows: list[dict]) -> list[str]:
    if not rows:
        return ["(no rows: the check was skipped on this device)", ""]
    keys = list(rows[0])
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(_number(row.get(key)) for key in keys) + " |" for row in rows]
    return lines + [""]


def section(folder: Path) -> list[str]:
    lines, device = [], None
    for path in sorted(folder.glob("*.json")):
        data = json.loads(path.read_text())
        if "results" in data:  # bench_models.py
            env = data["env"]
            device = device or env.get("gpu") or env.get("device")
            lines += [f"### {path.stem}: bench_models.py --preset {env['preset']} ({env['dtype']})", ""]
            lines += _table([{k: r[k] for k in ("model", "side", "median_s", "min_s", "vs_reference", "vs_comfy",
                                                "max_abs_diff", "ref_max_abs") if k in r}
                             | ({"peak_gib": r["peak_gib"]} if "peak_gib" in r else {}) for r in data["results"]])
        else:  # bench_speed.py
            device = device or data.get("gpu") or data.get("device")
            for name in ("cache", "compile", "fp8", "vram"):
                if name in data:
                    lines += [f"### {path.stem}: bench_speed.py {name} (preset {data['preset']}, {data['dtype']}, "
                              f"{data['threads']} threads)", ""]
                    lines += _table(data[name])
    today = datetime.date.today().isoformat()
    return [f"## {today} — {device}", ""] + lines


def main(argv: list[str]) -> int:
    folder, target = Path(argv[0]), Path(argv[1])
    text = target.read_text() if target.exists() else "# Benchmark results\n\n"
    target.write_text(text.rstrip("\n") + "\n\n" + "\n".join(section(folder)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
