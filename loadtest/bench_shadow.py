"""Benchmark: what a shadow challenger costs the champion's latency.

    python -m loadtest.bench_shadow [--rates 100 200] [--seconds 20]

Needs a challenger for the lead model (``leadrisk train lead`` again: a version that does not
beat the champion becomes the challenger). Runs the locust staircase at the given rates against
a started service twice, with the lead model's release off and in shadow mode, in the order
off, shadow, shadow, off, and prints the champion's p95 and p99 per rate for each mode (the mean
of its two runs) and the ratio. The release is left off.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics

from core.kinds import LEAD
from core.settings import get_settings
from loadtest import runner
from monitoring.releases import ReleaseError, ReleaseStore
from service.packaging import import_champions

ORDER = ("off", "shadow", "shadow", "off")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", type=float, nargs="+", default=[100.0, 200.0])
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    settings = get_settings()
    profile = settings.loadtest.smoke
    profile.nominal_rps, profile.multiples = 1.0, list(args.rates)
    profile.step_seconds, profile.warmup_seconds = args.seconds, 5.0
    import_champions(settings)
    store = ReleaseStore(settings.release_store_url)
    model = LEAD.registered_name
    by_mode: dict[str, list[list[dict]]] = {"off": [], "shadow": []}
    try:
        for mode in ORDER:
            if mode == "shadow":
                store.start(model, "shadow")
            else:
                _stop(store, model)
            result = runner.run(settings, "smoke", "leadrisk", feedback=False)
            by_mode[mode].append(result.summary["steps"])
    finally:
        _stop(store, model)
    print(
        f"{'req/s':>6} {'p95 off':>8} {'p95 shadow':>11} {'ratio':>6} {'p99 off':>8} "
        f"{'p99 shadow':>11} {'failures':>8}"
    )
    for i, rate in enumerate(args.rates):
        p95 = {m: statistics.mean(run[i]["p95_ms"] for run in by_mode[m]) for m in by_mode}
        p99 = {m: statistics.mean(run[i]["p99_ms"] for run in by_mode[m]) for m in by_mode}
        failures = sum(run[i]["failures"] for m in by_mode for run in by_mode[m])
        print(
            f"{rate:>6.0f} {p95['off']:>8.1f} {p95['shadow']:>11.1f} "
            f"{p95['shadow'] / p95['off']:>6.2f} {p99['off']:>8.1f} {p99['shadow']:>11.1f} "
            f"{failures:>8}"
        )


def _stop(store: ReleaseStore, model: str) -> None:
    with contextlib.suppress(ReleaseError):
        store.stop(model, "benchmark")


if __name__ == "__main__":
    main()
