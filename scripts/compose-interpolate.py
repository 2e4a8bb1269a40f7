#!/usr/bin/env python3
"""Interpolate a compose file with an env file, the way `docker compose` does,
without Docker: prints the interpolated document as JSON (for a JSON-schema
check against the Compose Specification) or lists the variables it uses.

    compose-interpolate.py --env-file .env.example compose.dev.yml > out.json
    compose-interpolate.py --list-vars compose/compose.prod.yml

Only the env file is consulted (not this process's environment), so the result
depends on the example file alone. Supported syntax, as in the Compose
Specification: $$ (a literal $), $VAR, ${VAR}, ${VAR:-default}, ${VAR-default},
${VAR:?error}, ${VAR?error}, ${VAR:+replacement}, ${VAR+replacement}, with
nested ${...} in defaults. A variable that is unset and has no default is an
error here (compose would substitute an empty string with a warning), and so
is a ${VAR:?...}/${VAR?...} whose variable is missing. Exit 0 on success, 1 on
any problem (printed on stderr), 2 on usage errors.

Needs a YAML 1.2 loader: ruamel.yaml (installed with check-jsonschema) or PyYAML.
"""

from __future__ import annotations

import argparse
import json
import re
import sys

NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class InterpolationError(Exception):
    pass


def load_yaml(path: str):
    try:
        from ruamel.yaml import YAML  # type: ignore

        with open(path, encoding="utf-8") as fh:
            return YAML(typ="safe", pure=True).load(fh)
    except ImportError:
        import yaml  # type: ignore

        with open(path, encoding="utf-8") as fh:
            return yaml.safe_load(fh)


def parse_env_file(path: str) -> dict[str, str]:
    """KEY=VALUE lines; `export ` prefix, quotes and `#` comments as compose reads them."""
    env: dict[str, str] = {}
    with open(path, encoding="utf-8") as fh:
        for lineno, raw in enumerate(fh, 1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            if line.startswith("export "):
                line = line[len("export "):].lstrip()
            if "=" not in line:
                raise InterpolationError(f"{path}:{lineno}: expected KEY=VALUE, got {raw.rstrip()!r}")
            key, value = line.split("=", 1)
            key = key.strip()
            if not NAME.fullmatch(key):
                raise InterpolationError(f"{path}:{lineno}: invalid variable name {key!r}")
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
                quote, value = value[0], value[1:-1]
                if quote == '"':
                    value = value.replace("\\n", "\n").replace('\\"', '"').replace("\\\\", "\\")
            else:
                value = re.split(r"\s+#", value, maxsplit=1)[0].rstrip()
            env[key] = value
    return env


class Interpolator:
    def __init__(self, env: dict[str, str] | None):
        self.env = env
        self.used: set[str] = set()
        self.problems: list[str] = []

    def run(self, text: str, where: str) -> str:
        out, i = self._parse(text, 0, where, stop=None)
        return out

    def _lookup(self, name: str) -> str | None:
        self.used.add(name)
        if self.env is None:
            return ""
        return self.env.get(name)

    def _parse(self, s: str, i: int, where: str, stop: str | None) -> tuple[str, int]:
        """Parse from s[i] until the end, or until an unmatched `stop` char."""
        out: list[str] = []
        n = len(s)
        while i < n:
            c = s[i]
            if stop is not None and c == stop:
                return "".join(out), i
            if c != "$":
                out.append(c)
                i += 1
                continue
            nxt = s[i + 1] if i + 1 < n else ""
            if nxt == "$":
                out.append("$")
                i += 2
            elif nxt == "{":
                value, i = self._braced(s, i + 2, where)
                out.append(value)
            else:
                m = NAME.match(s, i + 1)
                if not m:
                    raise InterpolationError(f"{where}: invalid interpolation format in {s!r}")
                out.append(self._plain(m.group(0), where))
                i = m.end()
        if stop is not None:
            raise InterpolationError(f"{where}: unterminated ${{...}} in {s!r}")
        return "".join(out), i

    def _plain(self, name: str, where: str) -> str:
        value = self._lookup(name)
        if value is None:
            self.problems.append(f"{where}: ${{{name}}} is not set and has no default")
            return ""
        return value

    def _braced(self, s: str, i: int, where: str) -> tuple[str, int]:
        m = NAME.match(s, i)
        if not m:
            raise InterpolationError(f"{where}: invalid interpolation format in {s!r}")
        name, i = m.group(0), m.end()
        if i < len(s) and s[i] == "}":
            return self._plain(name, where), i + 1
        for op in (":-", ":?", ":+", "-", "?", "+"):
            if s.startswith(op, i):
                break
        else:
            raise InterpolationError(f"{where}: invalid interpolation format in {s!r}")
        arg, j = self._parse(s, i + len(op), where, stop="}")
        value = self._lookup(name)
        unset = value is None
        empty = unset or value == ""
        if op == ":-":
            result = arg if empty else value
        elif op == "-":
            result = arg if unset else value
        elif op == ":?":
            if empty:
                self.problems.append(f"{where}: required variable {name} is missing a value: {arg}")
            result = value or ""
        elif op == "?":
            if unset:
                self.problems.append(f"{where}: required variable {name} is missing: {arg}")
            result = value or ""
        elif op == ":+":
            result = "" if empty else arg
        else:  # "+"
            result = "" if unset else arg
        return result, j + 1


def walk(node, interp: Interpolator, path: str):
    if isinstance(node, dict):
        return {k: walk(v, interp, f"{path}.{k}" if path else str(k)) for k, v in node.items()}
    if isinstance(node, list):
        return [walk(v, interp, f"{path}[{i}]") for i, v in enumerate(node)]
    if isinstance(node, str):
        return interp.run(node, path)
    return node


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("compose_file")
    ap.add_argument("--env-file", help="variables for the interpolation (KEY=VALUE lines)")
    ap.add_argument("--list-vars", action="store_true", help="print the variable names the file uses, one a line")
    args = ap.parse_args()
    if not args.list_vars and not args.env_file:
        ap.error("--env-file is required unless --list-vars is given")
    try:
        env = None if args.list_vars else parse_env_file(args.env_file)
        doc = load_yaml(args.compose_file)
        if not isinstance(doc, dict):
            raise InterpolationError(f"{args.compose_file}: not a YAML mapping")
        interp = Interpolator(env)
        result = walk(doc, interp, "")
    except (InterpolationError, OSError) as err:
        print(f"compose-interpolate: {err}", file=sys.stderr)
        return 1
    except Exception as err:  # YAML syntax errors and the like
        print(f"compose-interpolate: {args.compose_file}: {err}", file=sys.stderr)
        return 1
    if args.list_vars:
        print("\n".join(sorted(interp.used)))
        return 0
    if interp.problems:
        for p in interp.problems:
            print(f"compose-interpolate: {args.compose_file}: {p}", file=sys.stderr)
        return 1
    json.dump(result, sys.stdout, indent=2, sort_keys=True, default=str)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
