"""Check that the tests catch realistic one-line bugs (the mutation audits of issues 8 and 17); `make test` runs it.

Each mutant is one text replacement in one file. The repo's files are copied to temporary folders (the working
tree is never touched), the mutant applied in one of them, and only the tests named for it run there, in a child
forked from this process (torch and the other heavy libraries are imported once, before the first fork); a mutant
is caught when they fail. `--jobs` copies run at once (one per CPU by default). Before any test runs, every
mutant's text must be found exactly once in its file: a pattern the code has moved away from is an error naming the
mutant (exit 2), never a silent pass.

Usage: `.venv/bin/python scripts/check_mutants.py [name ...]` (all by default; `--patterns` checks the patterns
only, in a second). Exits 1 when a mutant survives, 2 when a pattern does not match exactly once or a
mutant's tests cannot run (not found, not collected, a set-up error).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import traceback
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mutants import MUTANTS, Mutant  # noqa: E402  (the list lives beside this script)

REPO = Path(__file__).resolve().parents[1]
LINKED = (".venv", ".comfyui", ".api_clients", ".venv-tools", ".transformers")
"""Set-up folders (ignored by git) that the copy links to instead of copying."""
logger = logging.getLogger("check_mutants")




def stale_patterns(mutants, root: Path = REPO) -> list[str]:
    """One line per mutant whose text is not found exactly once in its file (or whose file or test file is gone)."""
    problems = []
    for mutant in mutants:
        path = root / mutant.path
        count = path.read_text().count(mutant.original) if path.is_file() else None
        if count != 1:
            found = "the file does not exist" if count is None else f"found {count} times"
            problems.append(f"{mutant.name}: '{mutant.original}' must be found exactly once in {mutant.path} "
                            f"({found})")
        for test in mutant.tests:
            if not (root / test.split("::")[0]).is_file():
                problems.append(f"{mutant.name}: its test file {test.split('::')[0]} does not exist")
    return problems


def copy_repo(target: Path) -> None:
    """The tracked and untracked (not ignored) files, with the set-up folders linked, not copied."""
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO, check=True,
                            capture_output=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        source = REPO / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    for shared in LINKED:
        if (REPO / shared).exists():
            (target / shared).symlink_to((REPO / shared).resolve())


PRELOADED = ("torch", "numpy", "einops", "safetensors.torch", "PIL.Image", "av", "pytest",
             "ltx_video.pipelines.pipeline_ltx_video", "ltx_video.inference")
"""Third-party modules imported once here, before the mutants' test runs fork from this process: each run then
starts in a fraction of a second instead of importing torch and the official package (with diffusers) again, about
10 s on 2 cores. The pack's own modules are never imported here, so each run imports its mutated copy afresh."""


@dataclass
class Run:
    """One mutant's tests running in a forked child, in one of the copies."""

    mutant: Mutant
    copy: Path
    original: str
    log: Path
    pid: int


def start(mutant: Mutant, copy: Path, log: Path) -> Run:
    """Apply the mutant to the copy and fork a child that runs its tests there as `python -m pytest` would."""
    path = copy / mutant.path
    original = path.read_text()
    path.write_text(original.replace(mutant.original, mutant.mutated))
    pid = os.fork()
    if pid == 0:  # the child: never returns
        code = 3
        try:
            with open(log, "w") as out:
                os.dup2(out.fileno(), 1)
                os.dup2(out.fileno(), 2)
            os.chdir(copy)
            sys.path[0] = str(copy)
            sys.dont_write_bytecode = True  # a restored file of the same size and second must not reuse a stale .pyc
            import pytest

            code = int(pytest.main(["-q", "-x", "-p", "no:cacheprovider", *mutant.tests]))
        except BaseException:
            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    return Run(mutant, copy, original, log, pid)


def finish(run: Run, status: int) -> bool:
    """Restore the copy; True when the mutant's tests failed. Tests that pytest cannot find, collect or set up are
    an error (exit 2), not a catch."""
    (run.copy / run.mutant.path).write_text(run.original)
    code = os.waitstatus_to_exitcode(status)
    output = run.log.read_text(errors="replace")
    last = (output.strip().splitlines() or ["(no output)"])[-1]
    logger.info("%s: %s", run.mutant.name, last)
    if code not in (0, 1) or re.search(r"\b\d+ errors?\b", last):
        logger.error("%s: pytest could not run its tests (exit %d; a set-up error is not a catch):\n%s",
                     run.mutant.name, code, output[-3000:])
        sys.exit(2)
    return code == 1


def survivors_of(mutants: list[Mutant], jobs: int) -> list[str]:
    """Run every mutant's tests, `jobs` at a time, each in its own copy of the repo; the names of those not caught."""
    for name in PRELOADED:
        importlib.import_module(name)
    if threading.active_count() != 1:
        raise RuntimeError("a preloaded module started a thread: forking would copy its locks held")
    import torch

    torch.set_num_threads(max(1, (os.cpu_count() or 1) // jobs))  # the children inherit it: no oversubscription
    survivors, waiting, running = [], list(reversed(mutants)), {}
    with tempfile.TemporaryDirectory() as folder:
        copies = [Path(folder) / f"copy{number}" for number in range(min(jobs, len(mutants)))]
        for copy in copies:
            copy.mkdir()
            copy_repo(copy)
        free = list(copies)
        while waiting or running:
            while waiting and free:
                copy = free.pop()
                run = start(waiting.pop(), copy, copy.with_suffix(".log"))
                running[run.pid] = run
            pid, status = os.wait()
            run = running.pop(pid)
            free.append(run.copy)
            if not finish(run, status):
                survivors.append(run.mutant.name)
    order = [m.name for m in mutants]
    return sorted(survivors, key=order.index)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="mutants to check (default: all)")
    parser.add_argument("--patterns", action="store_true", help="only check that every pattern matches once")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                        help="mutants checked at once, each in its own copy (default: one per CPU)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    unknown = set(args.names) - {m.name for m in MUTANTS}
    if unknown:
        logger.error("no such mutant: %s", ", ".join(sorted(unknown)))
        sys.exit(2)
    chosen = [m for m in MUTANTS if not args.names or m.name in args.names]
    problems = stale_patterns(chosen)
    if problems:
        logger.error("stale mutant patterns (update them to the code):\n%s", "\n".join(problems))
        sys.exit(2)
    if args.patterns:
        logger.info("all %d mutant patterns match exactly once", len(chosen))
        return
    survivors = survivors_of(chosen, args.jobs)
    logger.info("caught %d of %d%s", len(chosen) - len(survivors), len(chosen),
                f"; survived: {', '.join(survivors)}" if survivors else "")
    sys.exit(1 if survivors else 0)


if __name__ == "__main__":
    main()
