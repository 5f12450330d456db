"""The benchmark's summary: a table of figures and ratios, and a small PNG chart of the ratios."""

from __future__ import annotations

import platform
import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Figure:
    """One row: Gristmill's figure, its peer's (if any), and the bar it must meet."""

    name: str
    ours: str
    peer: str
    ratio: float | None
    bar: str
    # None: a figure given for context, with no bar of its own.
    met: bool | None
    # For the chart: the ratio's bar (minimum or maximum allowed) and the direction.
    bar_ratio: float | None = None
    higher_is_better: bool = True


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cores = subprocess.run(["nproc"], capture_output=True, text=True, check=False).stdout.strip()
    return f"{cores} cores ({cpu}), Python {platform.python_version()}, {platform.system()}"


def table(figures: list[Figure]) -> str:
    lines = [
        "| figure | Gristmill | plain peer, same run | ratio | bar | met |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for f in figures:
        ratio = f"{f.ratio:.2f}x" if f.ratio is not None else "-"
        met = "-" if f.met is None else "yes" if f.met else "NO"
        lines.append(f"| {f.name} | {f.ours} | {f.peer} | {ratio} | {f.bar} | {met} |")
    return "\n".join(lines)


def chart(figures: list[Figure], path: Path) -> None:
    """Horizontal bars of each ratio against its bar (a vertical tick)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [f for f in figures if f.ratio is not None]
    fig, axis = plt.subplots(figsize=(7.5, 0.55 * len(rows) + 1.2), dpi=110)
    names = [f.name for f in rows]
    ratios = [f.ratio or 0.0 for f in rows]
    colours = ["#9e9e9e" if f.met is None else "#2e7d32" if f.met else "#c62828" for f in rows]
    axis.barh(names, ratios, color=colours)
    for index, f in enumerate(rows):
        if f.bar_ratio is not None:
            axis.plot([f.bar_ratio, f.bar_ratio], [index - 0.4, index + 0.4], color="black")
        better = "higher is better" if f.higher_is_better else "lower is better"
        if f.met is None:
            better = "context, no bar"
        # Right of the bar and of its tick, so the label never sits on the tick.
        label_at = max(f.ratio or 0.0, f.bar_ratio or 0.0) + 0.05
        axis.text(label_at, index, f"{f.ratio:.2f}x ({better})", va="center")
    axis.invert_yaxis()
    axis.set_xlabel("Gristmill / plain peer (black tick: the bar to meet)")
    axis.set_xlim(0, max([*ratios, *(f.bar_ratio or 0 for f in rows)]) * 1.8)
    axis.set_title("Gristmill / plain FastAPI and Celery peers, same run", fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
