"""scripts/check_mutants.py (run by `make test` after the suite) stays a real check: every mutant's text is found
exactly once in its file and its tests exist, and a pattern the code moved away from stops the script loudly."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "check_mutants.py"


def _script():
    spec = importlib.util.spec_from_file_location("check_mutants", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("check_mutants", module)  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_every_mutant_pattern_matches_exactly_once():
    script = _script()
    assert script.stale_patterns(script.MUTANTS) == []
    assert len({m.name for m in script.MUTANTS}) == len(script.MUTANTS)


def test_a_stale_pattern_fails_loudly_naming_the_mutant(tmp_path):
    script = _script()
    gone = script.Mutant("gone", "fetch/policy.py", "no such line", "x", ("tests/core/test_fetch.py",))
    twice = script.Mutant("twice", "fetch/policy.py", "return", "x", ("tests/core/test_fetch.py",))
    lost = script.Mutant("lost", "fetch/nothing.py", "a", "b", ("tests/core/test_nothing.py",))
    problems = script.stale_patterns([gone, twice, lost])
    assert [p.split(":")[0] for p in problems] == ["gone", "twice", "lost", "lost"]
    assert "(found 0 times)" in problems[0] and "times)" in problems[1] and "does not exist" in problems[2]
    run = subprocess.run([sys.executable, str(SCRIPT), "no-such-mutant"], capture_output=True, text=True)
    assert run.returncode == 2 and "no such mutant: no-such-mutant" in run.stderr
