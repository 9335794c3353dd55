"""The run's chart: completed and failed req/s, rolling p50/p95/p99, step boundaries marked."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from core.settings import LoadTestSettings  # noqa: E402
from loadtest.summary import (  # noqa: E402
    AGGREGATED,
    COUNT,
    FAILURES,
    PERCENTILES,
    TIME,
    StepWindow,
)

SMOOTH_ROWS = 3


def title(target: str, profile: str, result: dict) -> str:
    """The run in one line: up to which step the SLO held, and the peak throughput."""
    best = result["max_sustainable_rps"]
    peak = max((step["achieved_rps"] for step in result["steps"]), default=0.0)
    held = f"SLO held up to {best:g} req/s" if best else "SLO missed at every step"
    return f"{target} / {profile}: {held}; peak {peak:.0f} req/s achieved"


def draw(
    history: pd.DataFrame,
    steps: list[StepWindow],
    slo: LoadTestSettings,
    title: str,
    out: Path,
) -> Path:
    rows = history[history["Name"] == AGGREGATED]
    origin = steps[0].start if steps else float(rows[TIME].min())
    rows = rows[rows[TIME] >= origin]  # the warm-up before the first step is not judged
    seconds = rows[TIME] - origin
    fig, (rate, latency) = plt.subplots(2, 1, figsize=(11, 7), sharex=True)
    per_second = rows[TIME].diff()
    for column, label, colour in (
        (COUNT, "completed", "tab:blue"),
        (FAILURES, "failed", "tab:red"),
    ):
        values = (rows[column].diff() / per_second).rolling(SMOOTH_ROWS, min_periods=1).mean()
        rate.plot(seconds, values, label=f"{label} req/s ({SMOOTH_ROWS} s mean)", color=colour)
    offered = [(s.start - origin, s.end - origin, s.offered_rps) for s in steps]
    for start, end, value in offered:
        rate.hlines(value, start, end, colors="tab:gray", linestyles="dashed")
    rate.plot([], [], color="tab:gray", linestyle="dashed", label="offered req/s")
    rate.set_ylabel("req/s")
    rate.legend(loc="upper left")
    for label, column in PERCENTILES.items():
        latency.plot(seconds, rows[column], label=label.replace("_ms", ""))
    latency.axhline(slo.slo_p95_ms, color="tab:orange", linestyle=":", label="p95 SLO")
    latency.axhline(slo.slo_p99_ms, color="tab:red", linestyle=":", label="p99 SLO")
    latency.set_yscale("log")
    latency.set_ylabel("ms (rolling ~10 s window)")
    latency.set_xlabel("seconds since the first step")
    latency.legend(loc="upper left")
    for axis in (rate, latency):
        for start, _, _ in offered:
            axis.axvline(start, color="black", alpha=0.25)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out
