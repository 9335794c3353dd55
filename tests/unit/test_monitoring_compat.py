"""whylogs 1.6.4 on NumPy 2 breaks on string columns; ``monitoring.whylogs_compat`` fixes that.

Each case runs in a fresh interpreter, because once the shim has been imported the bug is gone
for the whole process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[2]
PROFILE_STRINGS = """
import json
import pandas as pd
import whylogs as why

frame = pd.DataFrame({"x": [1.0, 2.0, 3.0], "s": pd.array(["a", "b", "a"], dtype="string")})
summary = why.log(frame).view().get_column("s").to_summary_dict()
items = {i.value: i.est for i in summary["frequent_items/frequent_strings"]}
print(json.dumps({"n": summary["counts/n"], "strings": summary["types/string"], "items": items}))
"""


def _start(shim: bool) -> subprocess.Popen[str]:
    code = ("import monitoring.whylogs_compat\n" if shim else "") + PROFILE_STRINGS
    return subprocess.Popen(
        [sys.executable, "-c", code],
        cwd=PROJECT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "WHYLOGS_NO_ANALYTICS": "1"},
    )


def test_string_columns_fail_without_the_shim_and_profile_with_it():
    plain, shimmed = _start(shim=False), _start(shim=True)
    plain_out, plain_err = plain.communicate(timeout=120)
    shim_out, shim_err = shimmed.communicate(timeout=120)

    assert plain.returncode != 0, "whylogs profiles strings on NumPy 2 now: drop the shim"
    assert "np.unicode_" in plain_err

    assert shimmed.returncode == 0, shim_err
    summary = json.loads(shim_out.strip().splitlines()[-1])
    assert summary == {"n": 3, "strings": 3, "items": {"a": 2, "b": 1}}


def test_pooled_chi_square_fixes_whylogs_rare_category_false_drift():
    """whylogs' own chi-square reports p = 0 for identical distributions that contain a rare
    category; the pooled test does not, and still detects a real shift."""
    import numpy as np
    import pandas as pd

    from monitoring.whylogs_compat import (
        ChiSquare,
        ChiSquareConfig,
        PooledChiSquare,
        calculate_drift_scores,
        why,
    )

    rng = np.random.default_rng(0)
    values, shares = ["a", "b", "rare"], [0.6, 0.3996, 0.0004]
    reference = why.log(pandas=pd.DataFrame({"c": rng.choice(values, 20_000, p=shares)})).view()
    same = why.log(pandas=pd.DataFrame({"c": rng.choice(values, 600, p=shares)})).view()
    shifted = why.log(
        pandas=pd.DataFrame({"c": rng.choice(values, 600, p=[0.4, 0.5996, 0.0004])})
    ).view()

    def p_value(algorithm, target) -> float:
        scores = calculate_drift_scores(
            target_view=target, reference_view=reference, drift_map={"c": algorithm}
        )
        return scores["c"]["pvalue"]

    assert p_value(ChiSquare(ChiSquareConfig()), same) == 0.0  # the upstream bug
    assert p_value(PooledChiSquare(ChiSquareConfig()), same) > 0.01
    assert p_value(PooledChiSquare(ChiSquareConfig()), shifted) < 1e-6


def _mixed_frame(rows: int, seed: int):
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    floats = rng.normal(size=rows)
    floats[rng.random(rows) < 0.2] = np.nan
    floats[:3] = [np.inf, -np.inf, 0.0][: min(rows, 3)]
    strings = rng.choice(np.array(["a", "b", "c", None, np.nan], dtype=object), rows)
    return pd.DataFrame(
        {
            "f": floats,
            "f_full": rng.normal(size=rows),
            "f32": floats.astype("float32"),
            "s": strings,
            "s_none": np.where(strings == "c", None, strings),
            "s_full": rng.choice(np.array(["x", "y"], dtype=object), rows),
            "mixed": rng.choice(np.array([1, "b", 2.5, None], dtype=object), rows),
            "ints": rng.integers(0, 5, rows),
            "all_missing": np.array([None] * rows, dtype=object),
        }
    )


def test_fast_column_split_profiles_exactly_like_whylogs(monkeypatch):
    """The vectorised split gives whylogs' own summaries (counts, NaN/inf, types, quantiles,
    frequent items) on floats with NaN and inf, strings with None and NaN, and leaves mixed,
    integer and all-missing columns to whylogs."""
    from monitoring import whylogs_compat
    from monitoring.whylogs_compat import PreprocessedColumn, why

    assert PreprocessedColumn._pandas_split is whylogs_compat._pandas_split
    for rows, seed in ((1, 0), (2, 3), (7, 1), (150, 2)):  # KLL keeps every value below its k
        frame = _mixed_frame(rows, seed)
        fast = why.log(pandas=frame).view().to_pandas()
        with monkeypatch.context() as patched:
            patched.setattr(
                PreprocessedColumn, "_pandas_split", whylogs_compat._whylogs_pandas_split
            )
            upstream = why.log(pandas=frame).view().to_pandas()
        assert fast.shape == upstream.shape
        assert fast.astype(str).equals(upstream.astype(str)), rows
