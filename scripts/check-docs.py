#!/usr/bin/env python3
"""Checks that what the documentation names exists as written.

    python3 scripts/check-docs.py        prints each problem, exits 1 if any

In README.md, docs/*.md and compose/README.md (inline `code`, fenced code
blocks and links):

  paths      a repository path (first component a tracked top-level entry, or
             /opt/app/{scripts,compose,Caddyfile}/..., the server's copy of
             them) exists; <placeholder>, * and {a,b} match anything / expand
  links      [text](file.md#anchor): the file exists and has that heading
  variables  an environment variable (`NAME`, `NAME=...`, `${NAME}`) is read
             by the binaries (config/vars.rs, also as NAME_FILE) or used by a
             compose file, an example env file, a script, the Dockerfile, the
             Caddyfile or a workflow
  flags      a --flag given to one of our scripts appears in that script: the
             script named before it on the same line, or in the heading of
             its section (prose like "`--user` creates ..." under "setup-server.sh")
  commands   `api X` / `worker X`: X is a subcommand of that binary
  metrics    a Prometheus metric name (`..._total`, `..._seconds`, ...) is
             registered by the code (a "name" string in crates/*/src)
  compose    a `docker compose` line with compose.prod.yml passes --env-file
             (the file's project directory is compose/, so the server's
             /opt/app/.env is not found by default)
  ssh        `ssh`/`scp` to deploy@... passes -i (the deploy user has only the
             deploy key)

And in the comments of scripts and tests/ops: every *.md file named exists.
What cannot be checked mechanically (does the sentence describe the right
file?) is left to review.
"""

import glob
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCS = ["README.md", "compose/README.md", *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "docs").glob("*.md"))]
SCRIPT_DIRS = ["scripts", "tests/ops", ".ci"]

# Upper-case words in docs that are not this stack's environment variables.
NOT_VARIABLES = {
    "GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS",  # HTTP methods
    "ERROR", "WARN", "INFO", "DEBUG", "TRACE",  # log levels
    "SIGTERM", "SIGINT", "SIGKILL", "UTC", "HS256", "HS384", "AAAA", "NET_BIND_SERVICE",
    "NOTIFY", "LISTEN", "PRAGMA", "COMMIT", "NULL", "RETURNING", "LIMIT",  # SQL
    "FILE", "TAG", "SERVER", "SQLITE_FILE", "POSTGRES_URL", "PATTERN", "N",  # placeholders in usage lines
    "PGPASSWORD",  # libpq's (psql) and sqlx's (worker copy-to-postgres)
    "PROJECT_NAME_FILE",  # named as an example of what is *not* read
    "STACK_NAME", "SENTRY_DSN", "DOCKER_IMAGE_BACKEND",  # the FastAPI template's, which this stack ignores
}

problems = []
checked = {"paths": 0, "links": 0, "variables": 0, "flags": 0, "commands": 0, "metrics": 0}


def problem(where, message):
    problems.append(f"{where}: {message}")


def tracked_files():
    try:
        out = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
        files = set(out.splitlines())
    except (OSError, subprocess.CalledProcessError):
        files = set()
    if not files:  # an exported copy without .git
        skip = {".git", "target", "data"}
        files = {
            str(p.relative_to(ROOT))
            for p in ROOT.rglob("*")
            if p.is_file() and not (set(p.relative_to(ROOT).parts) & skip)
        }
    return {f for f in files if (ROOT / f).exists()}


FILES = tracked_files()
DIRS = {str(Path(f).parents[i]) for f in FILES for i in range(len(Path(f).parts) - 1)}
TOP = {Path(f).parts[0] for f in FILES}


def expand_braces(text):
    m = re.search(r"\{([^{}]*,[^{}]*)\}", text)
    if not m:
        return [text]
    return [x for alt in m.group(1).split(",") for x in expand_braces(text[: m.start()] + alt + text[m.end() :])]


def path_exists(path):
    path = path.rstrip("/") or path
    for candidate in expand_braces(path):
        pattern = re.sub(r"<[^<>]*>", "*", candidate).replace("...", "*")
        if "*" in pattern or "?" in pattern:
            if glob.glob(str(ROOT / pattern)):
                continue
            return False
        if candidate not in FILES and candidate not in DIRS:
            return False
    return True


def repo_path(token):
    """The repository path a token names, or None when it names none."""
    token = token.strip("\"'(),;:")
    token = re.sub(r"^(/opt/app/|\./)(?=scripts/|compose/|Caddyfile)", "", token)
    token = token.removeprefix("./")
    if not token or token.startswith(("/", "http", "$", "-")) or "=" in token or "@" in token:
        return None
    first = token.split("/")[0]
    if first in TOP and ("/" in token or token in FILES):
        return token.split("#")[0].split(":")[0] if not token.startswith(".") or first in TOP else None
    return None


def headings(md_file):
    """GitHub's anchors of a Markdown file's headings."""
    anchors, seen = set(), {}
    in_code = False
    for line in (ROOT / md_file).read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            in_code = not in_code
        m = None if in_code else re.match(r"^#{1,6}\s+(.*?)\s*#*$", line)
        if m:
            slug = re.sub(r"[^\w\- ]", "", m.group(1).lower()).replace(" ", "-")
            n = seen.get(slug, 0)
            seen[slug] = n + 1
            anchors.add(slug if n == 0 else f"{slug}-{n}")
    return anchors


def variable_universe():
    names = set()
    vars_rs = (ROOT / "crates/shared-core/src/config/vars.rs").read_text(encoding="utf-8")
    for kind, name in re.findall(r"\b(var|secret)\(\s*\"([A-Z0-9_]+)\"", vars_rs):
        names.add(name)
        if kind == "secret":
            names.add(f"{name}_FILE")
    # Variables the binaries name at start as set but not read (config::IGNORED).
    config_rs = (ROOT / "crates/shared-core/src/config/mod.rs").read_text(encoding="utf-8")
    ignored = re.search(r"const IGNORED: &\[\(&str, &str\)\] = &\[(.*?)\n\];", config_rs, re.S)
    if ignored:
        names.update(re.findall(r"\(\s*\"([A-Z0-9_]+)\"", ignored.group(1)))
    sources = [
        f
        for f in FILES
        if f.startswith(("scripts/", "tests/ops/", ".github/", "docker/", "compose/", ".ci/"))
        or f in ("compose.dev.yml", ".env.example", "Caddyfile")
    ]
    patterns = [
        r"\$\{?([A-Z][A-Z0-9_]*)",  # $NAME, ${NAME...}
        r"\{\$([A-Z][A-Z0-9_]*)",  # Caddyfile {$NAME}
        r"^\s*#?\s*(?:export\s+)?([A-Z][A-Z0-9_]*)=",  # NAME= lines, commented too
        r"\b(?:secrets|vars|env)\.([A-Z][A-Z0-9_]*)",  # workflow contexts
        r"^\s+([A-Z][A-Z0-9_]*):",  # YAML environment keys
        r"\b([A-Z][A-Z0-9_]*)=",  # NAME=value anywhere (env -i lists, -e NAME=...)
        r"\benv_get\s+([A-Z][A-Z0-9_]*)",  # scripts/lib.sh: environment, else .env
    ]
    for f in sources:
        text = (ROOT / f).read_text(encoding="utf-8", errors="replace")
        for pattern in patterns:
            names.update(re.findall(pattern, text, re.MULTILINE))
    # Build settings: cargo's [env] names and the SQLite options among them.
    cargo_config = (ROOT / ".cargo/config.toml").read_text(encoding="utf-8")
    names.update(re.findall(r"^([A-Z][A-Z0-9_]*)\s*=", cargo_config, re.MULTILINE))
    names.update(re.findall(r"-D([A-Z][A-Z0-9_]*)", cargo_config))
    # The Rust test harness reads these.
    names.update({"TEST_POSTGRES_URL", "TEST_REDIS_URL", "CARGO_TARGET_DIR"})
    return names


VARIABLES = variable_universe()
SCRIPTS = {f for f in FILES if f.startswith(tuple(SCRIPT_DIRS)) and (f.endswith((".sh", ".py")) or f == ".ci/run")}
SCRIPT_BY_NAME = {}
for f in sorted(SCRIPTS):
    SCRIPT_BY_NAME.setdefault(Path(f).name, f)


def subcommands(main_rs, enum="Command"):
    """The variants of `enum` in kebab case; a `#[command(flatten)] Variant(Inner)` adds Inner's."""
    text = (ROOT / main_rs).read_text(encoding="utf-8")
    body = text[text.index(f"enum {enum} {{") :]
    body = body[: body.index("\n}")]
    names, flatten = set(), False
    for line in body.splitlines():
        if re.match(r"^\s{4}#\[command\(flatten\)\]", line):
            flatten = True
        elif variant := re.match(r"^\s{4}([A-Z]\w*)(?:\((\w+)\))?", line):
            if flatten:
                names |= subcommands(main_rs, variant.group(2))
            else:
                names.add(re.sub(r"(?<!^)(?=[A-Z])", "-", variant.group(1)).lower())
            flatten = False
    return names


COMMANDS = {"api": subcommands("crates/api/src/main.rs"), "worker": subcommands("crates/worker/src/main.rs")}
METRIC = re.compile(r"^[a-z][a-z0-9]*(?:_[a-z0-9]+)+_(?:total|seconds|in_flight|depth|connections)$")  # namespace_name_unit
RUST_SOURCE = "\n".join(
    (ROOT / f).read_text(encoding="utf-8") for f in FILES if f.startswith("crates/") and "/src/" in f and f.endswith(".rs")
)


def script_of(token):
    token = token.strip("\"'")
    path = repo_path(token)
    if path in SCRIPTS:
        return path
    return SCRIPT_BY_NAME.get(Path(token).name) if token.endswith((".sh", ".py")) else None


def check_words(where, text, context_script):
    """One code span or code line: paths, variables, flags, commands.
    `context_script` is the script named earlier on the line or in the heading."""
    words = text.split()
    script = None
    for i, word in enumerate(words):
        if word in ("|", "&&", ";", "||"):
            script = None
            continue
        path = repo_path(word)
        if path is not None:
            checked["paths"] += 1
            if not path_exists(path):
                problem(where, f"no such path in the repository: {path}")
        found = script_of(word)
        if found:
            script = found
        for name in re.findall(r"(?:^|[\s$({,])\$?\{?([A-Z][A-Z0-9_]*[A-Z0-9])(?==|\}|$|\b)", word):
            if (
                ("_" in name or len(words) == 1 or word.startswith(("$", name + "=")))
                and name not in NOT_VARIABLES
                and not (i > 0 and words[i - 1] in ("-i", "-f"))
            ):
                checked["variables"] += 1
                if name not in VARIABLES:
                    problem(where, f"variable {name} is neither read by the binaries nor used by any script or compose file")
        flag = re.match(r"^\[?(--[a-z][a-z0-9-]*)", word)
        owner = script or (context_script if len(words) <= 3 and i == 0 else None)
        if flag and owner:
            checked["flags"] += 1
            if flag.group(1) not in (ROOT / owner).read_text(encoding="utf-8"):
                problem(where, f"{owner} has no flag {flag.group(1)}")
    if len(words) == 1 and METRIC.match(words[0]):
        checked["metrics"] += 1
        if f'"{words[0]}"' not in RUST_SOURCE:
            problem(where, f"metric {words[0]} is not registered anywhere in crates/*/src")
    if len(words) >= 2 and words[0] in COMMANDS and re.fullmatch(r"[a-z][a-z-]*", words[1]):
        checked["commands"] += 1
        if words[1] not in COMMANDS[words[0]]:
            problem(where, f"`{words[0]} {words[1]}`: {words[0]} has no such subcommand")
    line = " ".join(words)
    if re.search(r"docker compose\b", line) and "compose.prod.yml" in line and "--env-file" not in line:
        problem(where, "docker compose with compose.prod.yml but without --env-file: DOMAIN and IMAGE_PREFIX are not found")
    if re.search(r"\b(ssh|scp)\b[^|;&]*\bdeploy@", line) and not re.search(r"\s-i\s", f" {line} "):
        problem(where, "ssh/scp as deploy@ without -i: the deploy user accepts only the deploy key")


def check_doc(md):
    text = (ROOT / md).read_text(encoding="utf-8")
    heading_script = None
    in_code = False
    for n, line in enumerate(text.splitlines(), 1):
        where = f"{md}:{n}"
        if line.startswith("```"):
            in_code = not in_code
            continue
        if in_code:
            check_words(where, line.split(" #")[0], None)
            continue
        spans = re.findall(r"`([^`]+)`", line)
        named = [s for span in spans for s in map(script_of, span.split()) if s]
        if line.startswith("#"):
            heading_script = named[-1] if named else None
        line_script = heading_script
        for span in spans:
            check_words(where, span, line_script)
            line_script = next((s for s in map(script_of, span.split()) if s), line_script)
        for target in re.findall(r"\]\(([^)\s]+)\)", line):
            if target.startswith(("http://", "https://", "mailto:")):
                continue
            checked["links"] += 1
            file, _, anchor = target.partition("#")
            resolved = str((ROOT / md).parent.joinpath(file).resolve().relative_to(ROOT)) if file else md
            if file and resolved not in FILES and resolved not in DIRS:
                problem(where, f"link to a missing file: {target}")
            elif anchor and resolved.endswith(".md") and anchor not in headings(resolved):
                problem(where, f"link to a missing heading: {target}")


def check_script_comments():
    for f in sorted(SCRIPTS):
        for n, line in enumerate((ROOT / f).read_text(encoding="utf-8").splitlines(), 1):
            if line.lstrip().startswith("#"):
                for name in re.findall(r"[\w./-]+\.md\b", line):
                    candidates = [name, str(Path(f).parent / name)]
                    if not any(path_exists(c.removeprefix("./")) for c in candidates):
                        problem(f"{f}:{n}", f"names {name}, which does not exist")


def main():
    for md in DOCS:
        check_doc(md)
    check_script_comments()
    for p in problems:
        print(p)
    counts = ", ".join(f"{n} {what}" for what, n in checked.items())
    print(f"check-docs: {len(DOCS)} documents ({counts} checked), {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
