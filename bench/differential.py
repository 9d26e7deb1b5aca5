"""Differential run: torchfix-mod at a baseline commit against the working tree.

    python -m bench.differential                      # baseline 27e7768, corpus included
    python -m bench.differential --no-corpus          # rule examples and samples only
    python -m bench.differential --baseline HEAD~3 --jobs 2 --out /tmp/diffout
    python -m bench.differential --only transformers --modes check,diff-unsafe

This module owns the whole comparison and nothing else:

- the baseline checkout: a ``git worktree`` of the baseline commit under
  ``~/.cache/torchfix-mod/baseline-<sha>`` (created once, reused while it is clean);
- running either side: the same interpreter, isolated (``python -I``), with the side's own
  directory first on ``sys.path`` and the editable-install finder of the virtualenv removed,
  so each side runs the code on its disk whatever is installed. Only the command-line entry
  point (``python -m torchfix_mod``) is used; no rule module is imported by name. Before
  anything runs, a probe checks that every ``torchfix_mod``/``codemods`` module a side
  imports comes from that side's directory;
- the inputs: every rule example of the baseline (``FixCase.before`` and ``KeepCase.source``,
  dumped by a snippet run under the baseline's code, one file each, grouped by rule options),
  every ``samples/*/before.py``, any ``--input`` directory, and the pinned corpus libraries
  (``bench.corpus``) unless ``--no-corpus``;
- the runs: per input set and side, one CLI run over the whole set in each of four modes
  (check, check with ``--unsafe-fixes``, ``--diff``, ``--diff --unsafe-fixes``), always with
  ``--isolated --no-cache --output-format json`` and every rule of that side selected
  (default-off rules included);
- the comparison: findings as records (path relative to the input root, line, column, end
  line, end column, code, message, fix_available, fixed, and any other key the JSON has),
  the ``--diff`` output split per file with ``unidiff``, the other stderr lines (errors,
  notes, tracebacks) and the exit code;
- the report: a summary table, every difference with its file, line and old/new record, and
  the full JSON under ``--out`` (default ``bench/differential-out/``). Exit code 0 when both
  sides agree everywhere, 1 when anything differs, 2 when the comparison could not be set up.

Baseline results are deterministic for a commit, interpreter and input tree, so they are kept
under ``~/.cache/torchfix-mod/differential/`` keyed by all three (``--fresh`` ignores them);
the working tree is always run.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import difflib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import unidiff

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_BASELINE = "27e7768"
DEFAULT_OUT = ROOT / "bench" / "differential-out"
CACHE_ROOT = Path.home() / ".cache" / "torchfix-mod"

# mode name -> (--diff, --unsafe-fixes)
MODES: dict[str, tuple[bool, bool]] = {
    "check": (False, False),
    "check-unsafe": (False, True),
    "diff": (True, False),
    "diff-unsafe": (True, True),
}

# -- running a side's code ------------------------------------------------------------------

# Run with ``python -I -c PRELUDE+... ROOT args...``: drops the editable install's finder and
# path entries, puts ROOT first on sys.path, forgets any already imported copy.
PRELUDE = r"""
import sys
root = sys.argv[1]
del sys.argv[1]

def _editable(entry):
    name = getattr(entry, "__module__", None) or type(entry).__module__
    return "__editable__" in str(name)

sys.meta_path[:] = [f for f in sys.meta_path if not _editable(f)]
sys.path_hooks[:] = [h for h in sys.path_hooks if not _editable(h)]
sys.path[:] = [root] + [p for p in sys.path if p != root and "__editable__" not in str(p)]
sys.path_importer_cache.clear()
for _name in list(sys.modules):
    if _name.split(".")[0] in ("torchfix_mod", "codemods"):
        del sys.modules[_name]
"""

CLI_MAIN = PRELUDE + r"""
import runpy
sys.argv[0] = "torchfix-mod"
runpy.run_module("torchfix_mod", run_name="__main__", alter_sys=True)
"""

# Prints JSON: where the side's modules come from, its rule codes and every rule example.
INSPECT = PRELUDE + r"""
import importlib, inspect, json, os, pkgutil

def find_rules():
    try:
        from torchfix_mod.rule import load_rules
        return list(load_rules()), "torchfix_mod.rule.load_rules()"
    except Exception as exc:
        failure = f"torchfix_mod.rule.load_rules() failed: {exc!r}"
    found = {}
    for package_name in ("torchfix_mod.codemods", "codemods", "torchfix_mod.rules"):
        try:
            package = importlib.import_module(package_name)
        except ImportError:
            continue
        # rule modules may sit in family sub-packages (codemods/<family>/<rule>.py)
        for info in pkgutil.walk_packages(getattr(package, "__path__", []), prefix=f"{package_name}.",
                                          onerror=lambda name: None):
            try:
                module = importlib.import_module(info.name)
            except Exception:
                continue
            for obj in vars(module).values():
                if (inspect.isclass(obj) and obj.__module__ == module.__name__
                        and isinstance(getattr(obj, "code", None), str)
                        and (hasattr(obj, "fixes") or hasattr(obj, "keeps"))):
                    found.setdefault(obj.code, obj)
    return [found[c] for c in sorted(found)], failure + "; found by scanning packages"

rules, how = find_rules()
examples = []
for rule in rules:
    for i, case in enumerate(getattr(rule, "fixes", ()) or ()):
        examples.append({"code": rule.code, "kind": "fix", "index": i, "source": case.before,
                         "unsafe": bool(getattr(case, "unsafe", False)),
                         "options": dict(getattr(case, "options", None) or {})})
    for i, case in enumerate(getattr(rule, "keeps", ()) or ()):
        examples.append({"code": rule.code, "kind": "keep", "index": i, "source": case.source,
                         "reported": bool(getattr(case, "reported", False)), "options": {}})
modules = {name: getattr(m, "__file__", None) for name, m in sys.modules.items()
           if name.split(".")[0] in ("torchfix_mod", "codemods")}
for rule in rules:
    modules.setdefault(rule.__module__, inspect.getsourcefile(rule))
print(json.dumps({"how": how, "codes": [r.code for r in rules], "modules": modules,
                  "examples": examples}))
"""


class SetupError(RuntimeError):
    """The comparison cannot run: no baseline commit, no worktree, a side imports the wrong code."""


@dataclass
class Side:
    name: str  # "old" or "new"
    root: Path
    label: str  # the commit, or "working tree"
    sha: str | None = None  # the baseline commit
    cacheable: bool = False  # results of a commit can be kept
    codes: list[str] = field(default_factory=list)
    how: str = ""

    def command(self, snippet: str, args: list[str]) -> list[str]:
        return [sys.executable, "-I", "-c", snippet, str(self.root), *args]

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["PYTHONPATH"] = str(self.root)  # ignored under -I; for any child that is not
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        return env


def inspect_side(side: Side) -> dict:
    """Run the probe under the side's code; fail when a module comes from anywhere else."""
    proc = subprocess.run(
        side.command(INSPECT, []), cwd=tempfile.gettempdir(), env=side.env(), capture_output=True, text=True
    )
    if proc.returncode != 0:
        raise SetupError(f"{side.name} side ({side.label}): cannot load its rules:\n{proc.stderr.strip()}")
    data = json.loads(proc.stdout)
    root = side.root.resolve()
    strays = {
        name: path
        for name, path in data["modules"].items()
        if path is not None and root not in Path(path).resolve().parents
    }
    if strays:
        listing = "\n".join(f"  {name}: {path}" for name, path in sorted(strays.items()))
        raise SetupError(f"{side.name} side ({side.label}) imported code from outside {root}:\n{listing}")
    if "torchfix_mod" not in data["modules"]:
        raise SetupError(f"{side.name} side ({side.label}): torchfix_mod was not imported from {root}")
    side.codes = list(data["codes"])
    side.how = data["how"]
    return data


# -- the baseline worktree --------------------------------------------------------------------

def git(*args: str, cwd: Path = ROOT) -> str:
    proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SetupError(f"git {' '.join(args)} failed: {proc.stderr.strip()}")
    return proc.stdout.strip()


def resolve_commit(ref: str) -> str:
    return git("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")


@contextlib.contextmanager
def _locked(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _usable_worktree(path: Path, sha: str) -> bool:
    if not (path / ".git").exists():
        return False
    try:
        head = git("rev-parse", "HEAD", cwd=path)
        dirty = git("status", "--porcelain", "--untracked-files=no", cwd=path)
    except SetupError:
        return False
    return head == sha and not dirty


def baseline_worktree(ref: str, cache_root: Path = CACHE_ROOT) -> tuple[Path, str]:
    """A clean checkout of ``ref`` as a git worktree; created once and reused."""
    try:
        sha = resolve_commit(ref)
    except SetupError:
        raise SetupError(f"baseline {ref!r} is not a commit of this repository (a shallow clone?)") from None
    path = cache_root / f"baseline-{sha[:12]}"
    with _locked(cache_root / f".baseline-{sha[:12]}.lock"):
        if _usable_worktree(path, sha):
            return path, sha
        if path.exists():
            subprocess.run(["git", "worktree", "remove", "--force", str(path)], cwd=ROOT, capture_output=True)
            shutil.rmtree(path, ignore_errors=True)
        git("worktree", "prune")
        git("worktree", "add", "--detach", "--force", str(path), sha)
        if not _usable_worktree(path, sha):
            raise SetupError(f"the worktree at {path} is not a clean checkout of {sha}")
    return path, sha


# -- input sets -------------------------------------------------------------------------------

@dataclass
class InputSet:
    name: str
    root: Path
    flags: list[str] = field(default_factory=list)  # rule options (--buffer-persistent ...)


def option_flags(options: dict) -> list[str]:
    flags = []
    for key, value in sorted(options.items()):
        name = key.replace("_", "-")
        if value is True:
            flags.append(f"--{name}")
        elif value is False:
            flags.append(f"--no-{name}")
        else:
            flags += [f"--{name}", str(value)]
    return flags


def example_sets(examples: list[dict], workdir: Path) -> list[InputSet]:
    """One file per example, one directory (and input set) per distinct set of rule options."""
    groups: dict[str, list[dict]] = {}
    for example in examples:
        groups.setdefault(json.dumps(example["options"], sort_keys=True), []).append(example)
    sets = []
    for key in sorted(groups):
        options = json.loads(key)
        suffix = "+".join(f"{k}={v}" for k, v in sorted(options.items()))
        name = f"examples[{suffix}]" if suffix else "examples"
        directory = workdir / ("examples-" + hashlib.sha1(key.encode()).hexdigest()[:8] if suffix else "examples")
        directory.mkdir(parents=True)
        manifest = {}
        for example in groups[key]:
            filename = f"{example['code']}_{example['kind']}_{example['index']}.py"
            (directory / filename).write_text(example["source"], encoding="utf-8")
            manifest[filename] = {k: v for k, v in example.items() if k != "source"}
        (workdir / f"{directory.name}.manifest.json").write_text(json.dumps(manifest, indent=1), encoding="utf-8")
        sets.append(InputSet(name, directory, option_flags(options)))
    return sets


def samples_set(workdir: Path) -> InputSet | None:
    directory = workdir / "samples"
    found = sorted((ROOT / "samples").glob("*/before.py"))
    if not found:
        return None
    for before in found:
        target = directory / before.parent.name / "before.py"
        target.parent.mkdir(parents=True)
        shutil.copyfile(before, target)
    return InputSet("samples", directory)


def corpus_sets() -> list[InputSet]:
    from bench.corpus import WHEELS, source_dir

    return [InputSet(source_dir(name).name, source_dir(name)) for name in WHEELS]


# -- one run ------------------------------------------------------------------------------------

@dataclass
class Run:
    returncode: int
    stdout: bytes
    stderr: str
    seconds: float
    cached: bool = False


def cli_args(side: Side, inputs: InputSet, mode: str, jobs: int | None) -> list[str]:
    diff, unsafe = MODES[mode]
    select = ",".join(side.codes) if side.codes else "TFM"
    args = [".", "--isolated", "--no-cache", "--output-format", "json", "--select", select]
    if jobs is not None:
        args += ["--jobs", str(jobs)]
    if diff:
        args.append("--diff")
    if unsafe:
        args.append("--unsafe-fixes")
    return args + inputs.flags


def tree_digest(root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def _cache_file(side: Side, args: list[str], tree: str) -> Path:
    versions = []
    for dist in ("libcst", "typer", "unidiff", "pathspec", "rich"):
        try:
            versions.append(f"{dist}={metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{dist}=none")
    key = json.dumps([side.sha, sys.version, versions, args, tree])
    return CACHE_ROOT / "differential" / side.sha / (hashlib.sha256(key.encode()).hexdigest() + ".json")


def run_side(side: Side, inputs: InputSet, mode: str, jobs: int, tree: str | None) -> Run:
    """One CLI run over the whole input set (cached for the baseline when ``tree`` is given)."""
    args = cli_args(side, inputs, mode, jobs)
    # the number of workers does not change results
    cache_file = _cache_file(side, cli_args(side, inputs, mode, None), tree) if side.cacheable and tree else None
    if cache_file is not None and cache_file.is_file():
        data = json.loads(cache_file.read_text(encoding="utf-8"))
        return Run(data["returncode"], base64.b64decode(data["stdout"]), data["stderr"], data["seconds"], cached=True)
    start = time.perf_counter()
    proc = subprocess.run(side.command(CLI_MAIN, args), cwd=inputs.root, env=side.env(), capture_output=True)
    run = Run(proc.returncode, proc.stdout, proc.stderr.decode("utf-8", "replace"), time.perf_counter() - start)
    if cache_file is not None and not _crashed(run):
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        payload = {"returncode": run.returncode, "stdout": base64.b64encode(run.stdout).decode(),
                   "stderr": run.stderr, "seconds": run.seconds}
        temp = cache_file.with_suffix(".tmp")
        temp.write_text(json.dumps(payload), encoding="utf-8")
        temp.replace(cache_file)
    return run


def _crashed(run: Run) -> bool:
    return run.returncode not in (0, 1, 2) or "Traceback (most recent call last)" in run.stderr


# -- parsing a run ------------------------------------------------------------------------------

@dataclass
class Result:
    findings: list[dict] | None  # None: no JSON could be read
    patches: dict[str, str]  # path -> that file's part of the --diff output
    messages: list[str]  # the other lines on stderr (errors, notes, tracebacks)
    crash: str | None  # why this run does not count as a result


def _split_json(text: str) -> tuple[list | None, list[str]]:
    """The JSON array printed in ``text`` and the lines around it."""
    lines = text.splitlines(keepends=True)
    for i, line in enumerate(lines):
        if line.startswith("["):
            rest = "".join(lines[i:])
            try:
                value, end = json.JSONDecoder().raw_decode(rest)
            except ValueError:
                continue
            if isinstance(value, list):
                other = [ln.rstrip("\n") for ln in lines[:i]] + rest[end:].splitlines()
                return value, [ln for ln in other if ln.strip()]
    return None, [ln.rstrip("\n") for ln in lines if ln.strip()]


def split_patches(diff: str) -> dict[str, str]:
    if not diff.strip():
        return {}
    try:
        patch = unidiff.PatchSet(diff)
    except unidiff.UnidiffParseError as exc:
        return {f"<unparseable diff: {exc}>": diff}
    patches: dict[str, str] = {}
    for patched in patch:
        patches[patched.path] = patches.get(patched.path, "") + str(patched)
    return patches


def parse_run(run: Run, mode: str) -> Result:
    diff_mode, _ = MODES[mode]
    if diff_mode:
        findings, messages = _split_json(run.stderr)
        patches = split_patches(run.stdout.decode("utf-8", "surrogateescape"))
    else:
        findings, stray = _split_json(run.stdout.decode("utf-8", "replace"))
        messages = stray + [ln for ln in run.stderr.splitlines() if ln.strip()]
        patches = {}
    crash = None
    if _crashed(run):
        crash = f"exit code {run.returncode}"
    elif findings is None:
        crash = f"exit code {run.returncode}, no JSON findings in the output"
    if crash:
        tail = "\n".join(run.stderr.splitlines()[-15:])
        crash += f"; stderr ends:\n{tail}" if tail else "; stderr is empty"
    return Result(findings, patches, messages, crash)


# -- comparing ----------------------------------------------------------------------------------

def record_key(record: dict) -> str:
    return json.dumps(record, sort_keys=True)


def _pair(old: list[dict], new: list[dict]) -> list[tuple[dict | None, dict | None]]:
    """Pair the findings only one side has, same code and nearest line first, for display."""
    pairs = []
    new_left = list(new)
    for record in sorted(old, key=lambda r: (r.get("line", 0), r.get("column", 0))):
        same_code = [n for n in new_left if n.get("code") == record.get("code")]
        if same_code:
            match = min(same_code, key=lambda n: abs(n.get("line", 0) - record.get("line", 0)))
            new_left.remove(match)
            pairs.append((record, match))
        else:
            pairs.append((record, None))
    pairs += [(None, n) for n in new_left]
    return pairs


def compare(old: Result, new: Result, old_run: Run, new_run: Run) -> list[dict]:
    """Every difference between two runs of the same input set and mode."""
    differences: list[dict] = []
    for side, result in (("old", old), ("new", new)):
        if result.crash:
            differences.append({"kind": "crash", "side": side, "path": None, "line": None, "detail": result.crash})
    if old_run.returncode != new_run.returncode:
        differences.append({"kind": "exit code", "path": None, "line": None,
                            "old": old_run.returncode, "new": new_run.returncode})
    if old.findings is not None and new.findings is not None:
        old_count = Counter(record_key(r) for r in old.findings)
        new_count = Counter(record_key(r) for r in new.findings)
        only_old = [json.loads(k) for k in (old_count - new_count).elements()]
        only_new = [json.loads(k) for k in (new_count - old_count).elements()]
        paths = sorted({r.get("path", "") for r in only_old + only_new})
        for path in paths:
            pairs = _pair([r for r in only_old if r.get("path", "") == path], [r for r in only_new if r.get("path", "") == path])
            for o, n in pairs:
                line = (o or n).get("line")
                differences.append({"kind": "finding", "path": path, "line": line, "old": o, "new": n})
    for path in sorted(set(old.patches) | set(new.patches)):
        o, n = old.patches.get(path), new.patches.get(path)
        if o != n:
            differences.append({"kind": "diff", "path": path, "line": _first_hunk_line(o, n), "old": o, "new": n})
    if not (old.crash or new.crash):
        old_msgs, new_msgs = Counter(old.messages), Counter(new.messages)
        for message in sorted((old_msgs - new_msgs).elements()):
            differences.append({"kind": "message", "path": message.split(":", 1)[0], "line": None, "old": message, "new": None})
        for message in sorted((new_msgs - old_msgs).elements()):
            differences.append({"kind": "message", "path": message.split(":", 1)[0], "line": None, "old": None, "new": message})
    return differences


def _first_hunk_line(old: str | None, new: str | None) -> int | None:
    """The first source line of a hunk that only one of the two patches of a file has."""

    def hunks(text: str | None) -> list[tuple[int, str]]:
        try:
            return [(h.source_start, str(h)) for patched in unidiff.PatchSet(text or "") for h in patched]
        except unidiff.UnidiffParseError:
            return []

    old_hunks, new_hunks = hunks(old), hunks(new)
    old_texts, new_texts = {t for _, t in old_hunks}, {t for _, t in new_hunks}
    starts = [s for s, t in old_hunks if t not in new_texts] + [s for s, t in new_hunks if t not in old_texts]
    return min(starts) if starts else None


# -- reporting ----------------------------------------------------------------------------------

def describe_finding(record: dict | None) -> str:
    if record is None:
        return "(none)"
    where = f"{record.get('line')}:{record.get('column')}-{record.get('end_line')}:{record.get('end_column')}"
    if record.get("cell") is not None:
        where = f"cell {record['cell']} {where}"
    flags = [f"fix_available={record.get('fix_available')}", f"fixed={record.get('fixed')}"]
    known = {"path", "line", "column", "end_line", "end_column", "code", "message", "fix_available", "fixed", "cell"}
    flags += [f"{k}={record[k]!r}" for k in sorted(set(record) - known)]
    return f"{where} {record.get('code')} [{' '.join(flags)}] {record.get('message')!r}"


def print_difference(set_name: str, mode: str, difference: dict) -> None:
    kind = difference["kind"]
    where = difference.get("path") or ""
    if difference.get("line") is not None:
        where += f":{difference['line']}"
    print(f"[{set_name} {mode}] {kind}: {where}")
    if kind == "crash":
        print(f"  {difference['side']} side crashed: " + difference["detail"].replace("\n", "\n    "))
    elif kind == "finding":
        print(f"  old: {describe_finding(difference['old'])}")
        print(f"  new: {describe_finding(difference['new'])}")
    elif kind == "diff":
        old, new = difference["old"] or "", difference["new"] or ""
        if not old or not new:
            print(f"  old: {'(no change to this file)' if not old else f'{len(old.splitlines())} diff lines'}")
            print(f"  new: {'(no change to this file)' if not new else f'{len(new.splitlines())} diff lines'}")
        meta = difflib.unified_diff(old.splitlines(), new.splitlines(), "old --diff", "new --diff", lineterm="", n=2)
        for line in meta:
            print(f"    {line}")
    else:
        print(f"  old: {difference['old']}")
        print(f"  new: {difference['new']}")


@dataclass
class Row:
    set_name: str
    mode: str
    files: int
    old: Run
    new: Run
    old_result: Result
    new_result: Result
    differences: list[dict]


def _count(result: Result) -> str:
    return "crash" if result.findings is None else str(len(result.findings))


def print_table(rows: list[Row]) -> None:
    header = ["input set", "mode", "files", "findings old", "findings new", "patched old", "patched new",
              "differences", "exit old/new", "seconds old/new"]
    table = [header]
    for row in rows:
        diff_mode, _ = MODES[row.mode]
        old_s = f"{row.old.seconds:.1f}" + ("*" if row.old.cached else "")
        table.append([
            row.set_name, row.mode, str(row.files), _count(row.old_result), _count(row.new_result),
            str(len(row.old_result.patches)) if diff_mode else "-", str(len(row.new_result.patches)) if diff_mode else "-",
            str(len(row.differences)), f"{row.old.returncode}/{row.new.returncode}", f"{old_s}/{row.new.seconds:.1f}",
        ])
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    for i, line in enumerate(table):
        print("  ".join(cell.ljust(w) if j < 2 else cell.rjust(w) for j, (cell, w) in enumerate(zip(line, widths))))
        if i == 0:
            print("  ".join("-" * w for w in widths))
    if any(row.old.cached for row in rows):
        print("(* baseline result read from the cache; --fresh runs it again)")


# -- driver -------------------------------------------------------------------------------------

@dataclass
class Outcome:
    rows: list[Row]
    old: Side
    new: Side
    seconds: float

    @property
    def identical(self) -> bool:
        return not any(row.differences for row in self.rows)


def _python_files(root: Path) -> int:
    return sum(1 for p in root.rglob("*") if p.suffix in (".py", ".ipynb") and p.is_file())


def differential(
    baseline: str = DEFAULT_BASELINE,
    *,
    corpus: bool = True,
    examples: bool = True,
    samples: bool = True,
    inputs: list[Path] = (),
    modes: list[str] = tuple(MODES),
    only: list[str] = (),
    jobs: int | None = None,
    use_cache: bool = True,
    new_root: Path = ROOT,
    progress=None,
) -> Outcome:
    """Set up both sides and every input set, run them all, compare; nothing is printed but progress."""
    say = progress or (lambda message: None)
    start = time.perf_counter()
    jobs = jobs or os.cpu_count() or 1
    worktree, sha = baseline_worktree(baseline)
    old = Side("old", worktree, sha[:12], sha=sha, cacheable=use_cache)
    new = Side("new", Path(new_root).resolve(), "working tree")
    old_data = inspect_side(old)
    new_examples = "?"
    try:
        new_examples = len(inspect_side(new)["examples"])
    except SetupError as exc:  # a broken new side is a finding of the comparison, not a setup error
        say(f"new side: {exc}")
        new.how = f"probe failed: {exc}"
    say(f"old side: {old.root} ({old.how}, {len(old.codes)} rules, {len(old_data['examples'])} examples)")
    say(f"new side: {new.root} ({new.how}, {len(new.codes)} rules, {new_examples} examples of its own, not run)")
    rows = []
    with tempfile.TemporaryDirectory(prefix="torchfix-mod-differential-") as temp:
        workdir = Path(temp)
        sets: list[InputSet] = []
        for i, directory in enumerate(inputs):
            sets.append(InputSet(f"input{i + 1}:{Path(directory).name}", Path(directory).resolve()))
        if examples:
            sets += example_sets(old_data["examples"], workdir)
        if samples and (found := samples_set(workdir)) is not None:
            sets.append(found)
        if corpus:
            sets += corpus_sets()
        if only:
            sets = [s for s in sets if any(s.name.startswith(prefix) for prefix in only)]
        for inputs_set in sets:
            tree = tree_digest(inputs_set.root) if old.cacheable else None
            files = _python_files(inputs_set.root)
            for mode in modes:
                old_run = run_side(old, inputs_set, mode, jobs, tree)
                new_run = run_side(new, inputs_set, mode, jobs, None)
                old_result, new_result = parse_run(old_run, mode), parse_run(new_run, mode)
                differences = compare(old_result, new_result, old_run, new_run)
                rows.append(Row(inputs_set.name, mode, files, old_run, new_run, old_result, new_result, differences))
                say(
                    f"{inputs_set.name} {mode}: {len(differences)} difference(s) "
                    f"(old {old_run.seconds:.1f}s{' cached' if old_run.cached else ''}, new {new_run.seconds:.1f}s)"
                )
    return Outcome(rows, old, new, time.perf_counter() - start)


def write_out(outcome: Outcome, out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    payload = {
        "baseline": {"commit": outcome.old.sha or outcome.old.label, "root": str(outcome.old.root), "rules": outcome.old.how},
        "new": {"root": str(outcome.new.root), "rules": outcome.new.how},
        "seconds": round(outcome.seconds, 1),
        "identical": outcome.identical,
        "runs": [
            {
                "input_set": row.set_name, "mode": row.mode, "files": row.files,
                "old": {"exit_code": row.old.returncode, "seconds": round(row.old.seconds, 2), "cached": row.old.cached,
                        "findings": None if row.old_result.findings is None else len(row.old_result.findings),
                        "patched_files": len(row.old_result.patches), "crash": row.old_result.crash},
                "new": {"exit_code": row.new.returncode, "seconds": round(row.new.seconds, 2),
                        "findings": None if row.new_result.findings is None else len(row.new_result.findings),
                        "patched_files": len(row.new_result.patches), "crash": row.new_result.crash},
                "differences": row.differences,
            }
            for row in outcome.rows
        ],
    }
    target = out / "differences.json"
    target.write_text(json.dumps(payload, indent=1), encoding="utf-8")
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.differential", description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", default=DEFAULT_BASELINE, metavar="REF", help=f"baseline commit (default {DEFAULT_BASELINE})")
    parser.add_argument("--corpus", action=argparse.BooleanOptionalAction, default=True, help="include the corpus libraries")
    parser.add_argument("--examples", action=argparse.BooleanOptionalAction, default=True, help="include the rule examples")
    parser.add_argument("--samples", action=argparse.BooleanOptionalAction, default=True, help="include samples/*/before.py")
    parser.add_argument("--input", action="append", type=Path, default=[], metavar="DIR", help="another directory to compare on")
    parser.add_argument("--modes", default=",".join(MODES), help=f"comma-separated subset of {','.join(MODES)}")
    parser.add_argument("--only", default="", metavar="NAMES", help="comma-separated input set name prefixes to keep (e.g. timm,samples)")
    parser.add_argument("--jobs", "-j", type=int, default=None, help="worker processes per run (default: CPUs)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where differences.json goes")
    parser.add_argument("--fresh", action="store_true", help="run the baseline again instead of reading cached results")
    args = parser.parse_args(argv)
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if unknown := [m for m in modes if m not in MODES]:
        parser.error(f"unknown mode(s) {', '.join(unknown)}")

    def say(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    try:
        outcome = differential(
            args.baseline, corpus=args.corpus, examples=args.examples, samples=args.samples, inputs=args.input,
            modes=modes, only=[n.strip() for n in args.only.split(",") if n.strip()], jobs=args.jobs, use_cache=not args.fresh, progress=say,
        )
    except SetupError as exc:
        print(f"differential: error: {exc}", file=sys.stderr)
        return 2
    print(f"baseline {outcome.old.label} ({outcome.old.root}) against the working tree ({outcome.new.root})\n")
    print_table(outcome.rows)
    total = sum(len(row.differences) for row in outcome.rows)
    for row in outcome.rows:
        for difference in row.differences:
            print()
            print_difference(row.set_name, row.mode, difference)
    target = write_out(outcome, args.out)
    print(f"\n{'identical' if outcome.identical else f'{total} difference(s)'}; {outcome.seconds:.0f} s; details in {target}")
    return 0 if outcome.identical else 1


if __name__ == "__main__":
    sys.exit(main())
