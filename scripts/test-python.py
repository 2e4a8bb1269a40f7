#!/usr/bin/env python3
"""The Python tools the tests call, in a virtualenv of the test suite's own.

    python3 scripts/test-python.py [--venv DIR] [--requirement FILE ...]

Makes DIR a virtualenv holding exactly the pinned requirement files below
(the FastAPI template's password and token libraries, the OpenAPI validator
and schemathesis, actionlint for the ops tests), then prints DIR/bin/python.
Nothing is installed system-wide, so Debian's own Python, which refuses
`pip install` outside a virtualenv (externally-managed-environment), works.

DIR defaults to <cargo target dir>/tmp/test-python (CARGO_TARGET_DIR and
.cargo/config are honoured, through `cargo metadata`); the Rust tests pass
their CARGO_TARGET_TMPDIR/test-python, the same directory. The virtualenv is
made once and made again only when a requirement file or the interpreter
changes (DIR/.requirements-stamp holds their hash). Several processes may run
this at once (cargo test and nextest start test binaries side by side): an
exclusive lock on DIR.lock lets one build while the others wait and then find
it ready. An interrupted build leaves no stamp, so the next run starts over.

Progress goes to stderr; stdout carries only the interpreter's path.
--requirement replaces the default list (the test of this script uses it).
"""

import argparse
import fcntl
import hashlib
import json
import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REQUIREMENTS = [
    ROOT / "crates/shared-core/tests/fixtures/python_interop/requirements.txt",
    ROOT / "crates/api/tests/fixtures/requirements.txt",
    ROOT / "tests/ops/requirements.txt",
]
STAMP = ".requirements-stamp"


def log(message: str) -> None:
    print(f"test-python: {message}", file=sys.stderr, flush=True)


def cargo_target_dir() -> Path:
    try:
        out = subprocess.run(
            ["cargo", "metadata", "--format-version", "1", "--no-deps"],
            cwd=ROOT,
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        return Path(json.loads(out)["target_directory"])
    except (OSError, subprocess.CalledProcessError, KeyError, ValueError) as err:
        log(f"cargo metadata failed ({err}); using {ROOT / 'target'}")
        return ROOT / "target"


def fingerprint(requirements) -> str:
    digest = hashlib.sha256()
    digest.update(f"{sys.version}\n{sys.base_prefix}\n".encode())
    for path in requirements:
        digest.update(f"{path.name}\n".encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def build(target: Path, requirements) -> None:
    log(f"creating the virtualenv {target} (first use, or the requirements changed)")
    shutil.rmtree(target, ignore_errors=True)
    try:
        venv.EnvBuilder(with_pip=True, clear=True).create(target)
    except (subprocess.CalledProcessError, OSError) as err:
        sys.exit(
            f"test-python: cannot create a virtualenv with {sys.executable} ({err}); "
            "on Debian/Ubuntu install python3-venv (apt-get install python3-venv)"
        )
    args = [str(target / "bin/python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    for path in requirements:
        args += ["-r", str(path)]
    log("pip install " + " ".join(f"-r {p.relative_to(ROOT) if p.is_relative_to(ROOT) else p}" for p in requirements))
    # pip's own output goes to stderr too: stdout is the answer.
    result = subprocess.run(args, stdout=sys.stderr)
    if result.returncode != 0:
        sys.exit(f"test-python: pip install failed (exit {result.returncode}); is PyPI reachable?")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--venv", type=Path, help="the virtualenv (default: <cargo target dir>/tmp/test-python)")
    parser.add_argument("--requirement", type=Path, action="append", help="a requirement file (repeatable)")
    args = parser.parse_args()
    target = (args.venv or cargo_target_dir() / "tmp/test-python").absolute()
    requirements = [p.absolute() for p in args.requirement] if args.requirement else REQUIREMENTS
    wanted = fingerprint(requirements)

    target.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{target}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        stamp = target / STAMP
        python = target / "bin/python"
        current = stamp.read_text() if stamp.exists() else ""
        if current != wanted or not python.exists():
            build(target, requirements)
            stamp.write_text(wanted)
            log("ready")
    print(python)
    return 0


if __name__ == "__main__":
    sys.exit(main())
