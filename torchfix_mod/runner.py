"""One run over files: read, transform, diff or write. The CLI renders what this returns."""

from __future__ import annotations

import ast
import base64
import hashlib
import multiprocessing
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from torchfix_mod.cache import Cache
from torchfix_mod.diffing import unified_diff
from torchfix_mod.engine import Diagnostic, FileResult, Settings, SourceError, one_collection, transform_source
from torchfix_mod.files import SourceReadError, WriteRefused, decode, discover, write_atomic
from torchfix_mod.project import (
    ClassSummary,
    absolute,
    FileSummary,
    ProjectIndex,
    build_index,
    module_name,
    summarize,
)
from torchfix_mod.rule import Rule, RuleOptions


@dataclass(frozen=True)
class RunOptions:
    mode: str = "check"  # "check", "diff" or "write"
    unsafe_fixes: bool = False
    rule_options: RuleOptions = field(default_factory=RuleOptions)
    ignored_codes: Callable[[Path], frozenset[str]] | None = None  # per-file ignores (config)


@dataclass
class FileReport:
    path: Path
    display: str
    diagnostics: list[Diagnostic] = field(default_factory=list)
    errors: list[SourceError] = field(default_factory=list)
    diff: bytes = b""
    changed: bool = False
    scanned: bool = True  # False for a path that does not exist
    cached: bool = False  # the result came from the cache (the file was not parsed)
    output: bytes = b""  # stdin only: the (fixed) source to print
    notes: list[str] = field(default_factory=list)  # things left alone on purpose (notebook cells)


def display_path(path: Path, cwd: Path) -> str:
    """The path as diff headers and reports show it: relative to ``cwd`` when inside it."""
    absolute = Path(os.path.abspath(path))
    try:
        return absolute.relative_to(cwd).as_posix()
    except ValueError:
        return absolute.as_posix()


def _encoded_diff(display: str, old: str, new: str, encoding: str) -> bytes:
    """The diff in the file's own bytes, so ``git apply`` reproduces them exactly."""
    if encoding == "utf-8-sig":  # the BOM is part of the first line on disk
        old, new, encoding = "\ufeff" + old, "\ufeff" + new, "utf-8"
    text = unified_diff(display, old, new)
    if not text:
        return b""
    header_end = text.index("\n", text.index("\n") + 1) + 1
    return text[:header_end].encode("utf-8", "surrogateescape") + text[header_end:].encode(encoding)


def outside_roots(path: Path, roots: Sequence[Path]) -> bool:
    """A symlink whose target lies outside every path the run was given."""
    if not path.is_symlink():
        return False
    target = path.resolve()
    return not any(target == root or root in target.parents for root in roots)



@dataclass
class _Worker:
    """What every file of a run shares; set once per process."""

    rules: tuple[type[Rule], ...] = ()
    options: RunOptions = field(default_factory=RunOptions)
    roots: tuple[Path, ...] = ()
    cache: Cache | None = None
    project: ProjectIndex | None = None
    # the first component of every module name of the run: a class of the run can only be
    # looked up under one of them (None: the first pass does not try to finish files)
    packages: frozenset[str] | None = None
    base_cache: Cache | None = None  # the cache before it is salted with the project index


_state = _Worker()


class _NeedsIndex(BaseException):
    """The analysis asked about a name that may be a class of the run's other files.

    A BaseException, so that no rule's error handling takes it for a failure of its own."""


class _FirstPassIndex:
    """The project index as the first pass has it: empty. A lookup that could only ever
    answer None, whatever the other files hold, answers None; one that might find a class
    of the run stops the analysis, which then waits for the real index."""

    def __init__(self, packages: frozenset[str]) -> None:
        self.packages = packages

    def lookup(self, qname: str, module: str | None, is_package: bool = False):
        if module is None and qname.startswith("."):
            return None
        name = absolute(qname, module or "", is_package)
        if name and name.split(".", 1)[0] in self.packages:
            raise _NeedsIndex
        return None

    def holds(self, qname: str, module: str | None, is_package: bool = False) -> bool:
        return self.lookup(qname, module, is_package) is not None  # raises where the real index may know


def _init_worker(state: _Worker) -> None:
    global _state
    _state = state


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise SourceReadError(SourceError(1, 1, f"cannot read: {exc.strerror or exc}")) from None


# -- pre-pass: the classes of every file ------------------------------------------------

def _summary_to_json(summary: FileSummary) -> dict:
    return {
        "module": summary.module,
        "is_package": summary.is_package,
        "classes": {name: [c.bases, c.customizes_access, c.defines_call, sorted(c.names)] for name, c in summary.classes.items()},
        "imports": summary.imports,
    }


def _summary_from_json(data: dict) -> FileSummary:
    classes = {
        name: ClassSummary(list(bases), bool(custom), bool(call), frozenset(names))
        for name, (bases, custom, call, names) in data["classes"].items()
    }
    return FileSummary(data["module"], data["is_package"], classes, dict(data["imports"]))


_MISS = object()  # what a cache-only call returns when the cache does not hold the answer


def _index_file(item: tuple[Path, str], cache_only: bool = False) -> tuple[FileSummary | None, bool, FileReport | None]:
    """The first pass over a file, with one ``ast.parse``: its top-level classes and imports for
    the project index. Returns (summary, from the cache, report); with ``cache_only``,
    ``_MISS`` when the cache cannot answer.

    The report is the file's final one when its analysis, run on the same tree, never asked
    about a name that could be a class of the run (:class:`_FirstPassIndex`): the project
    index cannot change its result, and the file is not parsed a second time."""
    path, display = item
    if path.suffix != ".py":
        return None, False, None  # notebooks are not importable; the main pass reads them
    try:
        data = _read(path)
    except SourceReadError:
        return None, False, None  # the main pass reports it
    _, module, is_package = _settings(path)
    cache, key = _state.cache, None
    if cache is not None:
        key = cache.key("index", data, module, str(is_package))
        hit = cache.get(key)
        if hit is not None:
            summary = _summary_from_json(hit["summary"]) if hit["summary"] is not None else None
            return summary, True, None
    if cache_only:
        return _MISS
    report = None
    with one_collection():
        try:
            text, encoding = decode(data)
            tree = ast.parse(text)
            summary = summarize(tree, path, text)
        except (SourceReadError, SyntaxError, ValueError, RecursionError, MemoryError):
            summary = None  # the main pass reports the error
        else:
            if _state.packages is not None and not _bases_from_the_run(summary, _state.packages):
                report = _finish_early(path, display, data, text, encoding, tree)
            del tree
    if cache is not None and key is not None:
        cache.put(key, {"summary": _summary_to_json(summary) if summary else None})
    return summary, False, report


def _bases_from_the_run(summary: FileSummary, packages: frozenset[str]) -> bool:
    """A top-level class derives from a name imported from the run's own packages: its
    analysis will need the project index (and would only be stopped half-way)."""
    for cls in summary.classes.values():
        for base in cls.bases:
            target = summary.imports.get((base or "").split(".", 1)[0])
            if target is not None and target.split(".", 1)[0] in packages:
                return True
    return False


def _finish_early(path: Path, display: str, data: bytes, text: str, encoding: str, tree: ast.Module) -> FileReport | None:
    settings, module, _ = _settings(path)
    settings = replace(settings, project=_FirstPassIndex(_state.packages))
    try:
        result = transform_source(text, settings, tree)
    except _NeedsIndex:
        return None
    key = _free_key(data, settings, module)
    if key is not None:
        _state.base_cache.put(key, _result_to_json(result))
    return _finish(FileReport(path, display), path, data, text, encoding, result)


def _free_key(data: bytes, settings: Settings, module: str) -> str | None:
    """Where a result that no project index can change is cached: its key names the run's
    packages instead of the index (a file that is not in the run now may be later)."""
    if _state.base_cache is None or _state.packages is None:
        return None
    codes = ",".join(r.code for r in settings.rules)
    packages = ",".join(sorted(_state.packages))
    return _state.base_cache.key("result-free", data, module, str(settings.is_package), codes, packages)


# -- the main pass ------------------------------------------------------------------------

def _result_to_json(result: FileResult) -> dict:
    return {
        "diagnostics": [vars(d) | {"state_keys": list(d.state_keys)} for d in result.diagnostics],
        "errors": [vars(e) for e in result.errors],
        "new_source": result.new_source if result.changed else None,
    }


def _result_from_json(source: str, data: dict) -> FileResult:
    diagnostics = [Diagnostic(**(d | {"state_keys": tuple(d["state_keys"])})) for d in data["diagnostics"]]
    errors = [SourceError(**e) for e in data["errors"]]
    new_source = data["new_source"] if data["new_source"] is not None else source
    return FileResult(source, new_source, diagnostics, errors)


def _settings(path: Path) -> tuple[Settings, str, bool]:
    options = _state.options
    rules = _state.rules
    if options.ignored_codes is not None:
        dropped = options.ignored_codes(path)
        if dropped:
            rules = tuple(r for r in rules if not any(r.code.startswith(c) for c in dropped))
    module, is_package = module_name(path) if path.suffix == ".py" else (None, False)
    settings = Settings(
        rules=rules,
        unsafe_fixes=options.unsafe_fixes,
        apply_fixes=options.mode != "check",
        rule_options=options.rule_options,
        project=_state.project,
        module=module,
        is_package=is_package,
    )
    return settings, module or "", is_package


def transform_cached(data: bytes, text: str, settings: Settings, module: str, cache_only: bool = False):
    """The engine's result for one file's text and whether it came from the cache; with
    ``cache_only``, ``_MISS`` when the cache does not hold it."""
    cache = _state.cache
    if cache is None:
        return _MISS if cache_only else (transform_source(text, settings), False)
    codes = ",".join(r.code for r in settings.rules)
    key = cache.key("result", data, module, str(settings.is_package), codes)
    hit = cache.get(key)
    if hit is None:
        free = _free_key(data, settings, module)
        hit = _state.base_cache.get(free) if free is not None else None
    if hit is not None:
        return _result_from_json(text, hit), True
    if cache_only:
        return _MISS
    result = transform_source(text, settings)
    cache.put(key, _result_to_json(result))
    return result, False


def _notebook_result(data: bytes, text: str, settings: Settings, report: FileReport) -> FileResult:
    from torchfix_mod.notebooks import NotebookError, transform_notebook

    try:
        new_text, diagnostics, errors, skipped = transform_notebook(text, settings)
    except NotebookError as exc:
        return FileResult(text, text, [], [SourceError(1, 1, f"not a readable notebook: {exc}")])
    report.notes = [f"cell {cell}: not analysed ({reason})" for cell, reason in skipped]
    mapped = [replace(error, cell=cell) for cell, error in errors]
    return FileResult(text, new_text, diagnostics, mapped)


def process_file(path: Path, display: str, cache_only: bool = False):
    """Check (and diff or write) one file. With ``cache_only``: only if the cache holds its
    result, else ``_MISS`` (and nothing is reported or written)."""
    report = FileReport(path, display)
    notebook = path.suffix == ".ipynb"
    try:
        data = _read(path)
        if notebook:
            try:
                text, encoding = data.decode("utf-8"), "utf-8"
            except UnicodeDecodeError as exc:
                raise SourceReadError(SourceError(1, 1, f"cannot decode notebook as utf-8: {exc.reason}")) from None
        else:
            text, encoding = decode(data)
    except SourceReadError as exc:
        if cache_only:
            return _MISS
        report.errors.append(exc.error)
        return report
    settings, module, _ = _settings(path)
    if notebook:
        if cache_only:
            return _MISS
        result = _notebook_result(data, text, settings, report)
    else:
        found = transform_cached(data, text, settings, module, cache_only)
        if found is _MISS:
            return _MISS
        result, report.cached = found
    return _finish(report, path, data, text, encoding, result)


def _finish(report: FileReport, path: Path, data: bytes, text: str, encoding: str, result: FileResult) -> FileReport:
    """The report of one analysed file: its findings, its diff, and in write mode the write."""
    display = report.display
    report.diagnostics = result.diagnostics
    report.errors = list(result.errors)
    if result.changed:
        report.changed = True
        report.diff = _encoded_diff(display, text, result.new_source, encoding)
        if _state.options.mode == "write":
            problem = None
            if outside_roots(path, _state.roots):
                problem = "symlink to a file outside the given paths; not written"
            else:
                try:
                    write_atomic(path, result.new_source, encoding, expected=data)
                except WriteRefused as exc:
                    problem = str(exc)
                except OSError as exc:
                    problem = f"cannot write: {exc.strerror or exc}"
            if problem is not None:
                report.errors.append(SourceError(1, 1, problem))
                report.changed = False
                report.diagnostics = [_unfixed(d) for d in report.diagnostics]
    return report


def process_stdin(data: bytes, filename: str | None, rules: Sequence[type[Rule]], options: RunOptions) -> FileReport:
    """Source read from stdin: reported as ``filename`` (or ``-``); nothing is written."""
    path = Path(filename) if filename else Path("-")
    display = display_path(path, Path(os.path.abspath(Path.cwd()))) if filename else "-"
    report = FileReport(path, display, output=data)
    _init_worker(_Worker(tuple(rules), replace(options, mode="diff" if options.mode == "write" else options.mode)))
    try:
        text, encoding = decode(data)
    except SourceReadError as exc:
        report.errors.append(exc.error)
        return report
    settings, module, _ = _settings(path)
    if filename is None or path.suffix != ".py":
        settings = replace(settings, module=None)
    result = transform_source(text, settings)
    report.diagnostics = result.diagnostics
    report.errors = list(result.errors)
    if result.changed:
        report.changed = True
        report.diff = _encoded_diff(display, text, result.new_source, encoding)
        report.output = result.new_source.encode(encoding)
    return report


def _process_task(task: tuple[Path, str], cache_only: bool = False):
    return process_file(*task, cache_only=cache_only)


def _unfixed(diagnostic: Diagnostic) -> Diagnostic:
    return replace(diagnostic, fixed=False)


# -- a run ----------------------------------------------------------------------------------

class Progress:
    """What the CLI shows while files are processed (a no-op by default)."""

    def start(self, phase: str, total: int) -> None: ...

    def advance(self) -> None: ...

    def stop(self) -> None: ...


POOL_MIN_FILES = 4  # below this, starting worker processes costs more than it saves


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _map(function, items: list, jobs: int, state: _Worker, progress: Progress, phase: str) -> list:
    """``function`` over ``items`` in this process or a pool; results in the items' order.

    With a cache, this process first takes every item the cache can answer (``function``
    called with ``cache_only=True``); only the others go to worker processes, so a warm run
    starts no pool at all."""
    progress.start(phase, len(items))
    results: list = [None] * len(items)
    todo = list(range(len(items)))
    if state.cache is not None and jobs > 1 and len(items) >= POOL_MIN_FILES:
        _init_worker(state)
        todo = []
        for i, item in enumerate(items):
            found = function(item, cache_only=True)
            if found is _MISS:
                todo.append(i)
            else:
                results[i] = found
                progress.advance()
    if jobs <= 1 or len(todo) < POOL_MIN_FILES:
        _init_worker(state)
        for i in todo:
            results[i] = function(items[i])
            progress.advance()
    else:
        # biggest files first, so no worker is left with a long file at the end
        order = sorted(todo, key=lambda i: -_size(items[i][0] if isinstance(items[i], tuple) else items[i]))
        chunksize = max(1, min(8, len(order) // (jobs * 8)))
        if state.cache is not None:
            state.cache.store.close()
        with multiprocessing.get_context().Pool(jobs, initializer=_init_worker, initargs=(state,)) as pool:
            for i, value, entries in pool.imap_unordered(_indexed(function), [(i, items[i]) for i in order], chunksize):
                results[i] = value
                if entries:
                    state.cache.keep(entries)
                progress.advance()
    progress.stop()
    return results


class _indexed:
    """Picklable wrapper: ``(i, item) -> (i, function(item), cache entries it made)``; the
    main process writes the entries (:meth:`Cache.flush`)."""

    def __init__(self, function) -> None:
        self.function = function

    def __call__(self, pair):
        i, item = pair
        value = self.function(item)
        cache = _state.cache
        return i, value, cache.take() if cache is not None else None


def run(
    paths: Sequence[Path],
    rules: Sequence[type[Rule]],
    options: RunOptions,
    cwd: Path | None = None,
    *,
    jobs: int = 1,
    cache: Cache | None = None,
    progress: Progress | None = None,
    exclude: Callable[[Path, bool], bool] | None = None,
    default_excludes: bool = True,
    force_exclude: bool = False,
) -> list[FileReport]:
    """Process every Python file under ``paths``; reports come back in path order."""
    cwd = Path(os.path.abspath(cwd or Path.cwd()))
    progress = progress or Progress()
    files, missing = discover(paths, exclude=exclude, default_excludes=default_excludes, force_exclude=force_exclude)
    roots = tuple(Path(p).resolve() for p in paths)
    reports = [FileReport(p, display_path(p, cwd), errors=[SourceError(1, 1, msg)], scanned=False) for p, msg in missing]
    state = _Worker(tuple(rules), options, roots, cache, None)
    try:
        reports += _run_files(files, state, cwd, jobs, progress)
    finally:
        if cache is not None:
            cache.flush()
    reports.sort(key=lambda r: r.display)
    return reports


def _run_files(files: list[Path], state: _Worker, cwd: Path, jobs: int, progress: Progress) -> list[FileReport]:
    cache, options = state.cache, state.options
    displays = [display_path(path, cwd) for path in files]
    run_key = None
    if cache is not None:
        _init_worker(state)
        run_key = _run_key(cache, files, displays)
        hit = cache.get(run_key) if run_key is not None else None
        if hit is not None and len(hit["reports"]) == len(files) and _imported_unchanged(hit):
            return [_report_from_json(path, data) for path, data in zip(files, hit["reports"])]
    state.packages = frozenset(
        module_name(path)[0].split(".", 1)[0] for path in files if path.suffix == ".py"
    )
    state.base_cache = cache
    first = _map(_index_file, list(zip(files, displays)), jobs, state, progress, "Indexing")
    if cache is not None:
        cache.flush()
    summaries = [summary for summary, _, _ in first if summary is not None]
    imported = _imported_summaries(files, summaries)
    state.project = build_index(summaries + [summary for _, _, summary in imported])
    if cache is not None:  # results depend on the classes of the other files
        state.cache = cache.salted(state.project.fingerprint)
    finished = {i: report for i, (_, _, report) in enumerate(first) if report is not None}
    pending = [(path, display) for i, (path, display) in enumerate(zip(files, displays)) if i not in finished]
    rest = iter(_map(_process_task, pending, jobs, state, progress, "Checking"))
    done = [finished[i] if i in finished else next(rest) for i in range(len(files))]
    if run_key is not None and (options.mode != "write" or not any(r.changed for r in done)):
        read = {str(path): digest for path, digest, _ in imported}
        cache.put(run_key, {"reports": [_report_to_json(r) for r in done], "imported": read})
    return done


# -- the files the run imports ---------------------------------------------------------------

IMPORTED_FILES_LIMIT = 2000


def _imported_summaries(files: list[Path], summaries: list[FileSummary]) -> list[tuple[Path, str, FileSummary]]:
    """The files of the run's projects that the run imports from, directly or through other
    such files, that are not part of the run: their classes are known too (a pre-commit run on
    one file sees the ``Block`` it imports from ``.blocks``). Found through each import's
    dotted target under the directories the run's packages sit in; read, never imported, and
    never checked or changed. Returns (path, sha256 of its bytes, summary) for each."""
    roots: set[Path] = set()
    for path in files:
        if path.suffix != ".py":
            continue
        module, is_package = module_name(path)
        depth = len(module.split(".")) - (0 if is_package else 1)
        resolved = path.resolve()
        if depth < len(resolved.parents):
            roots.add(resolved.parents[depth])
    if not roots:
        return []
    known = {path.resolve() for path in files}
    found: list[tuple[Path, str, FileSummary]] = []
    queue = list(summaries)
    seen_targets: set[str] = set()
    while queue and len(found) < IMPORTED_FILES_LIMIT:
        summary = queue.pop()
        for target in summary.imports.values():
            if target in seen_targets:
                continue
            seen_targets.add(target)
            path = _module_file(target, roots)
            if path is None or path in known:
                continue
            known.add(path)
            try:
                data = path.read_bytes()
            except OSError:
                continue
            imported = _index_only(path, data)
            if imported is None:
                continue
            found.append((path, hashlib.sha256(data).hexdigest(), imported))
            queue.append(imported)
    return found


def _module_file(target: str, roots: set[Path]) -> Path | None:
    """The file that defines the longest importable prefix of ``target`` under ``roots``:
    ``pkg.layers.Attention`` -> ``<root>/pkg/layers.py`` (or ``pkg/layers/__init__.py``)."""
    parts = target.split(".")
    if not all(part.isidentifier() for part in parts):
        return None  # not a module path (a relative name beyond the top package, a typo)
    for cut in range(len(parts), 0, -1):
        relative = Path(*parts[:cut])
        for root in roots:
            for candidate in (root / relative.with_suffix(".py"), root / relative / "__init__.py"):
                if candidate.is_file():
                    return candidate.resolve()
    return None


def _index_only(path: Path, data: bytes) -> FileSummary | None:
    """The project-index summary of a file outside the run (cached as the run's own are)."""
    module, is_package = module_name(path)
    cache, key = _state.base_cache or _state.cache, None
    if cache is not None:
        key = cache.key("index", data, module, str(is_package))
        hit = cache.get(key)
        if hit is not None:
            return _summary_from_json(hit["summary"]) if hit["summary"] is not None else None
    try:
        text, _ = decode(data)
        summary = summarize(ast.parse(text), path, text)
    except (SourceReadError, SyntaxError, ValueError, RecursionError, MemoryError):
        summary = None
    if cache is not None and key is not None:
        cache.put(key, {"summary": _summary_to_json(summary) if summary else None})
    return summary


def _imported_unchanged(hit: dict) -> bool:
    """Every file the cached run read through imports still has the bytes it had."""
    for name, digest in (hit.get("imported") or {}).items():
        try:
            if hashlib.sha256(Path(name).read_bytes()).hexdigest() != digest:
                return False
        except OSError:
            return False
    return True


# -- the whole run at once ------------------------------------------------------------------

def _run_key(cache: Cache, files: list[Path], displays: list[str]) -> str | None:
    """A key for the whole run: every file's bytes, name, module and rules, and the settings
    (in the cache's salt). Unchanged files give the same key, and one read answers the run;
    None when a file cannot be read (the per-file path reports it)."""
    digest = hashlib.sha256()
    for path, display in zip(files, displays):
        try:
            data = path.read_bytes()
        except OSError:
            return None
        settings, module, is_package = _settings(path)
        codes = ",".join(r.code for r in settings.rules)
        digest.update(f"{os.path.abspath(path)}\0{display}\0{module}\0{is_package}\0{codes}\0".encode("utf-8", "surrogateescape"))
        digest.update(hashlib.sha256(data).digest())
    return cache.key("run", digest.digest())


def _report_to_json(report: FileReport) -> dict:
    return {
        "display": report.display,
        "diagnostics": [vars(d) | {"state_keys": list(d.state_keys)} for d in report.diagnostics],
        "errors": [vars(e) for e in report.errors],
        "diff": base64.b64encode(report.diff).decode("ascii"),
        "changed": report.changed,
        "notes": list(report.notes),
    }


def _report_from_json(path: Path, data: dict) -> FileReport:
    return FileReport(
        path,
        data["display"],
        diagnostics=[Diagnostic(**(d | {"state_keys": tuple(d["state_keys"])})) for d in data["diagnostics"]],
        errors=[SourceError(**e) for e in data["errors"]],
        diff=base64.b64decode(data["diff"]),
        changed=data["changed"],
        cached=True,
        notes=list(data["notes"]),
    )
