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

PROJECT = Path(__file__).resolve().parent.parent
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
