"""The pure core: source text in, fixed text and diagnostics out. No I/O here."""

from __future__ import annotations

import ast
import difflib
import gc
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace

from torchfix_mod.project import ProjectIndex
from torchfix_mod.rule import Finding, Rule, RuleOptions
from torchfix_mod.semantic import SemanticModel
from torchfix_mod.suppress import is_suppressed, noqa_codes, skips_file


@dataclass(frozen=True)
class Diagnostic:
    """One finding. Lines are 1-based, columns 1-based (as Ruff and flake8 print them)."""

    code: str
    message: str
    line: int
    column: int
    end_line: int
    end_column: int
    fix_available: bool = False  # a fix applicable under this run's settings
    unsafe_fix: bool = False  # a fix exists but needs --unsafe-fixes
    fixed: bool = False
    state_keys: tuple[str, ...] = ()  # state_dict keys the fix adds (patterns such as "blocks.*")
    cell: int | None = None  # notebooks: 1-based cell index (all cells counted); line is within it
    fix_note: str = ""  # why a fix the rule offered was not applied (the engine refused its result)


@dataclass(frozen=True)
class SourceError:
    line: int
    column: int
    message: str
    cell: int | None = None  # notebooks: the cell the line is in


# How a rule that raised is reported. Such a rule is isolated: its findings in the file are lost,
# the other rules' findings and fixes stand.
RULE_ERROR_PREFIX = "internal error in rule "


def is_rule_error(error: SourceError) -> bool:
    """``error`` is a rule that raised on the file (the rest of the file was still processed),
    not a file that could not be read, parsed or written (left untouched)."""
    return error.message.startswith(RULE_ERROR_PREFIX)


@dataclass(frozen=True)
class Settings:
    rules: tuple[type[Rule], ...]
    unsafe_fixes: bool = False
    apply_fixes: bool = True
    rule_options: RuleOptions = field(default_factory=RuleOptions)
    project: ProjectIndex | None = None  # nn.Module classes of the run's other files
    module: str | None = None  # this file's dotted module name, to resolve relative imports
    is_package: bool = False  # the file is a package's __init__.py
    # apply only the fixes of these findings, by :func:`finding_key` (an editor's quick fix for
    # one diagnostic); None: every applicable fix, repeated until a second run changes nothing
    fix_only: frozenset[tuple[str, int, int, int, int]] | None = None


def finding_key(d: Diagnostic) -> tuple[str, int, int, int, int]:
    """What names one diagnostic of a text: its code and range."""
    return (d.code, d.line, d.column, d.end_line, d.end_column)


@dataclass
class FileResult:
    source: str
    new_source: str
    diagnostics: list[Diagnostic]
    errors: list[SourceError]

    @property
    def changed(self) -> bool:
        return self.new_source != self.source


def parse_python(source: str) -> ast.Module | SourceError:
    """CPython's own verdict on the source: its tree, or the error with line and column."""
    try:
        return ast.parse(source)
    except SyntaxError as exc:
        return SourceError(exc.lineno or 1, exc.offset or 1, f"SyntaxError: {exc.msg}")
    except ValueError as exc:  # e.g. null bytes
        return SourceError(1, 1, f"cannot parse: {exc}")
    except (RecursionError, MemoryError):
        return SourceError(1, 1, "too deeply nested to parse")


def compile_error(source: str) -> SourceError | None:
    """What the full compiler rejects, beyond parsing (``return`` outside a function, ...)."""
    try:
        compile(source, "<torchfix-mod output>", "exec", dont_inherit=True)
    except SyntaxError as exc:
        return SourceError(exc.lineno or 1, exc.offset or 1, f"SyntaxError: {exc.msg}")
    except ValueError as exc:
        return SourceError(1, 1, f"cannot compile: {exc}")
    except (RecursionError, MemoryError):
        return SourceError(1, 1, "too deeply nested to compile")
    return None


def _check(model: SemanticModel, settings: Settings) -> tuple[list[Finding], list[SourceError]]:
    """Every semantic-model rule on the file; a rule that raises costs only its own findings."""
    findings: list[Finding] = []
    errors: list[SourceError] = []
    for cls in settings.rules:
        rule = cls(model, settings.rule_options)
        try:
            rule.check()
        except RecursionError:
            raise
        except Exception as exc:  # a rule bug must not cost the file its other fixes
            errors.append(SourceError(1, 1, f"{RULE_ERROR_PREFIX}{cls.code}: {type(exc).__name__}: {exc}"))
            continue
        findings.extend(rule.findings)
    return findings, errors


def _reported_lines(finding: Finding) -> range:
    """A ``# noqa`` counts on the first or last line of what was reported (as in Ruff)."""
    first, last = finding.span.line, finding.span.end_line
    return range(first, first + 1) if first == last else range(first, last + 1, last - first)


@contextmanager
def one_collection() -> Iterator[None]:
    """No garbage collection while one file is analysed, one young-generation collection after.

    A file's tree and model are hundreds of thousands of objects that all live until the file
    is done; left to itself, the collector would walk them again and again while they are
    built (a third of a run's time). The tree holds no reference cycles, so it is freed as
    soon as it is dropped, and everything the file allocated is still in the youngest
    generation: collecting that one afterwards frees what cycles remain."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
        gc.collect(0)


def transform_source(source: str, settings: Settings, tree: ast.Module | None = None) -> FileResult:
    """Run the selected rules on one file's text and apply the fixes they allow. ``tree``:
    ``ast.parse(source)`` when the caller has already parsed it."""
    with one_collection():
        return _transform_to_fixed_point(source, settings, tree)


def _transform_to_fixed_point(source: str, settings: Settings, tree: ast.Module | None = None) -> FileResult:
    try:
        result = _transform(source, settings, tree)
        if settings.fix_only is not None:  # the chosen fixes only, nothing they make possible
            return result
        # one fix can make another provable (a list that became an nn.ModuleList makes its
        # elements known modules): run again until nothing changes, so a second run is a no-op
        for _ in range(3):
            if not result.changed or result.errors:
                break
            again = _transform(result.new_source, settings)
            if not again.changed or again.errors:
                break
            rewritten = {n for d in result.diagnostics if d.fixed for n in range(d.line, d.end_line + 1)}
            to_original = _line_map(result.new_source, source, rewritten)
            fixed_later = [to_original(d) for d in again.diagnostics if d.fixed]
            result = FileResult(source, again.new_source, result.diagnostics + fixed_later, result.errors)
    except RecursionError:  # pathological nesting the parser accepted but a traversal cannot walk
        return FileResult(source, source, [], [SourceError(1, 1, "too deeply nested to analyse; left unchanged")])
    return result


def _line_map(current: str, original: str, rewritten: set[int]):
    """Moves a diagnostic found in an intermediate text back onto the original's lines: a line
    the earlier fixes left alone keeps its column; a line they wrote maps to the original lines
    they replaced.

    ``rewritten`` holds the original lines the earlier fixes reported on. They are matched in
    two steps: first as a region that matches nothing outside it (two identical lines, one of
    them rewritten, would otherwise let the diff pair the survivor with the wrong original),
    then line by line within the region (a fix reported on a whole method may only have
    inserted one line into it)."""
    old_lines, new_lines = original.split("\n"), current.split("\n")
    anchored = [f"\0rewritten line {n}" if n in rewritten else text for n, text in enumerate(old_lines, 1)]
    blocks = difflib.SequenceMatcher(None, anchored, new_lines, autojunk=False).get_opcodes()

    def locate(opcodes, n: int, inside: bool) -> tuple[int, bool]:
        # 0-based index `n` in `current` -> (0-based index in `original`, exact)
        for tag, i1, i2, j1, j2 in opcodes:
            if j1 <= n < j2 or (j1 == j2 == n):
                if tag == "equal":
                    return i1 + (n - j1), True
                if not inside and i1 < i2 and j1 < j2:  # a rewritten region: line by line inside it
                    inner = difflib.SequenceMatcher(None, old_lines[i1:i2], new_lines[j1:j2], autojunk=False)
                    shifted = [(t, a1 + i1, a2 + i1, b1 + j1, b2 + j1) for t, a1, a2, b1, b2 in inner.get_opcodes()]
                    return locate(shifted, n, True)
                return min(i1 + (n - j1), max(i2 - 1, i1)), False
        return n, False

    def line(n: int) -> tuple[int, bool]:  # 1-based line in `current` -> (line in original, exact)
        index, exact = locate(blocks, n - 1, False)
        return index + 1, exact

    def move(d: Diagnostic) -> Diagnostic:
        start, exact_start = line(d.line)
        end, exact_end = line(d.end_line)
        return replace(
            d,
            line=start,
            column=d.column if exact_start else 1,
            end_line=max(end, start),
            end_column=d.end_column if exact_end else d.end_column,
        )

    return move


def _transform(source: str, settings: Settings, tree: ast.Module | None = None) -> FileResult:
    if skips_file(source):
        return FileResult(source, source, [], [])
    if tree is None:
        tree = parse_python(source)
    if isinstance(tree, SourceError):
        return FileResult(source, source, [], [tree])
    model = SemanticModel(tree, source, settings.project, settings.module, settings.is_package)
    try:
        return _decide_and_fix(model, source, settings)
    finally:
        model.release()


# past this many fixes in one file, a refused result is not taken apart fix by fix
ONE_BY_ONE_LIMIT = 64


def _apply_checked(module, findings: list[Finding], tree: ast.Module, source: str) -> tuple[str, list[Finding], dict[int, str]]:
    """The fixes applied together, and the result compiled. When the result does not compile
    (or a fix cannot be applied), each fix is tried in turn on top of those kept: one that
    breaks the file is refused and its finding reported as not fixed, with the reason, while
    the file's other fixes are still written. Returns the new text, the findings whose fixes
    it holds, and the reason for each refused one (by ``id``)."""
    from torchfix_mod import cst_engine

    def attempt(chosen: list[Finding]) -> tuple[str | None, str]:
        try:
            text = cst_engine.apply_fixes(module, chosen, tree).code
        except Exception as exc:  # a rule's edit that does not fit the code: its defect
            return None, f"the fix could not be applied ({type(exc).__name__}: {exc})"
        broken = compile_error(text)
        if broken is not None:
            return None, f"the fixed code would not compile ({broken.message}, line {broken.line})"
        return text, ""

    text, why = attempt(findings)
    if text is not None:
        return text, findings, {}
    if len(findings) > ONE_BY_ONE_LIMIT:
        return source, [], {id(f): why for f in findings}
    kept: list[Finding] = []
    refused: dict[int, str] = {}
    new_source = source
    for finding in findings:
        text, why = attempt([*kept, finding])
        if text is None:
            refused[id(finding)] = why
        else:
            kept.append(finding)
            new_source = text
    return new_source, kept, refused


def _touches(fix, finding: Finding) -> bool:
    """One of the fix's edits lies on a line the finding was reported on."""
    first, last = finding.span.line, finding.span.end_line
    return any(edit.span.line <= last and edit.span.end_line >= first for edit in fix.edits)


def _key(f: Finding) -> tuple[str, int, int, int, int]:
    return (f.code, f.span.line, f.span.column + 1, f.span.end_line, f.span.end_column + 1)


def _decide_and_fix(model: SemanticModel, source: str, settings: Settings) -> FileResult:
    findings, errors = _check(model, settings)
    if findings:
        suppressed = noqa_codes(source)
        aliases = {rule.code: rule.torchfix_codes() for rule in settings.rules}
        silenced = [is_suppressed(suppressed, f.code, _reported_lines(f), aliases.get(f.code, ())) for f in findings]
        # a fix shared with a silenced finding (the import that fixes each use) that would
        # change the lines its `# noqa` keeps: the other findings keep no fix either
        kept_alone = {
            id(f.fix) for f, quiet in zip(findings, silenced) if quiet and f.fix is not None and _touches(f.fix, f)
        }
        findings = [f for f, quiet in zip(findings, silenced) if not quiet]
        for finding in findings:
            if finding.fix is not None and id(finding.fix) in kept_alone:
                finding.fix = None

    def applicable(finding: Finding) -> bool:
        return finding.fix is not None and (not finding.fix.unsafe or settings.unsafe_fixes)

    to_apply = [f for f in findings if applicable(f)] if settings.apply_fixes else []
    if settings.fix_only is not None:
        to_apply = [f for f in to_apply if _key(f) in settings.fix_only]
    new_source = source
    module = None
    if to_apply:
        from torchfix_mod import cst_engine  # LibCST: only for a file with a fix to write

        parsed = cst_engine.parse(source)
        if isinstance(parsed, SourceError):
            errors.append(parsed)
            to_apply = []
        else:
            module = parsed
    if to_apply and module.code != source:
        # the parser cannot give this file back byte for byte (seen with blank lines before a
        # last line that has no newline): report, but rewrite nothing
        to_apply = []
    refused: dict[int, str] = {}
    if to_apply:
        new_source, to_apply, refused = _apply_checked(module, to_apply, model.tree, source)

    applied = {id(f) for f in to_apply}
    diagnostics = [
        Diagnostic(
            code=f.code,
            message=f.message,
            line=f.span.line,
            column=f.span.column + 1,
            end_line=f.span.end_line,
            end_column=f.span.end_column + 1,
            fix_available=applicable(f) and id(f) not in refused,
            unsafe_fix=f.fix is not None and f.fix.unsafe and not settings.unsafe_fixes,
            fixed=id(f) in applied,
            state_keys=f.state_keys,
            fix_note=refused.get(id(f), ""),
        )
        for f in findings
    ]
    diagnostics.sort(key=lambda d: (d.line, d.column, d.code))
    return FileResult(source, new_source, diagnostics, errors)
