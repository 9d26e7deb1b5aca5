"""The ``torchfix-mod`` command line: options in, one exit-code policy out.

Exit codes: 0 nothing to report (or, with --write, nothing left); 1 findings
(or, with --diff, a non-empty diff); 2 usage and configuration errors, and files
that could not be read, decoded, parsed or written.
"""

from __future__ import annotations

import enum
import os
import sys
from pathlib import Path
from typing import Annotated, Optional

from typing import TYPE_CHECKING

import typer

from torchfix_mod import __version__

if TYPE_CHECKING:
    from torchfix_mod.config import Config
    from torchfix_mod.runner import FileReport

app = typer.Typer(add_completion=False, context_settings={"help_option_names": ["-h", "--help"]})


class OutputFormat(str, enum.Enum):
    text = "text"
    json = "json"
    github = "github"
    sarif = "sarif"


class _Bar:
    """A rich progress bar on stderr (only used when stderr is a terminal); it implements
    :class:`torchfix_mod.runner.Progress`."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress as RichProgress, TextColumn, TimeElapsedColumn

        self._bar = RichProgress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            console=Console(stderr=True), transient=True,
        )
        self._task = None

    def start(self, phase: str, total: int) -> None:
        if self._task is None:
            self._bar.start()
            self._task = self._bar.add_task(phase, total=total)
        else:
            self._bar.reset(self._task, total=total, description=phase)

    def advance(self) -> None:
        self._bar.advance(self._task)

    def stop(self) -> None:
        pass

    def close(self) -> None:
        if self._task is not None:
            self._bar.stop()


PROGRESS_MIN_FILES = 20


def _codes(value: Optional[str]) -> list[str]:
    """Codes and prefixes; ``ALL`` (as in Ruff) is the empty prefix, the least specific."""
    from torchfix_mod.config import all_prefix

    return [all_prefix(c.strip().upper()) for c in (value or "").split(",") if c.strip()]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"torchfix-mod {__version__}")
        raise typer.Exit()


@app.command()
def torchfix_mod(
    paths: Annotated[Optional[list[Path]], typer.Argument(help="Files or directories to check (directories recursively).")] = None,
    diff: Annotated[bool, typer.Option("--diff", help="Print a unified diff of the fixes; write nothing.")] = False,
    write: Annotated[bool, typer.Option("--write", help="Apply the fixes in place.")] = False,
    select: Annotated[Optional[str], typer.Option(help="Comma-separated rule codes or prefixes to enable (e.g. TFM1,TFM301).")] = None,
    ignore: Annotated[Optional[str], typer.Option(help="Comma-separated rule codes or prefixes to disable.")] = None,
    extend_select: Annotated[Optional[str], typer.Option(help="Comma-separated codes or prefixes to enable on top of the selection.")] = None,
    output_format: Annotated[OutputFormat, typer.Option("--output-format", help="How findings are printed.")] = OutputFormat.text,
    unsafe_fixes: Annotated[Optional[bool], typer.Option("--unsafe-fixes/--no-unsafe-fixes", help="Also apply fixes marked unsafe.", show_default=False)] = None,
    buffer_persistent: Annotated[
        Optional[bool], typer.Option("--buffer-persistent/--no-buffer-persistent", help="TFM301 registers persistent buffers (adds state_dict keys).", show_default=False)
    ] = None,
    jobs: Annotated[Optional[int], typer.Option("--jobs", "-j", min=1, help="Worker processes (default: number of CPUs).")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only findings and errors: no summary, no progress bar.")] = False,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Neither read nor write the result cache.")] = False,
    config: Annotated[Optional[Path], typer.Option("--config", metavar="PATH", help="Read settings from this pyproject.toml instead of the nearest one.")] = None,
    isolated: Annotated[bool, typer.Option("--isolated", help="Ignore every configuration file.")] = False,
    force_exclude: Annotated[bool, typer.Option("--force-exclude", help="Apply the configured excludes to files named on the command line too.")] = False,
    exit_non_zero_on_fix: Annotated[bool, typer.Option("--exit-non-zero-on-fix", help="With --write, exit 1 when any file was changed (for pre-commit).")] = False,
    report: Annotated[Optional[Path], typer.Option("--report", metavar="FILE.md", help="Write a Markdown migration report (per rule, per file, checkpoint compatibility).")] = None,
    stdin_filename: Annotated[Optional[str], typer.Option("--stdin-filename", metavar="PATH", help="The file name to report for source read from stdin (path `-`).")] = None,
    list_rules: Annotated[bool, typer.Option("--list-rules", help="List every rule: code, name, fix safety, summary.")] = False,
    explain: Annotated[Optional[str], typer.Option("--explain", metavar="CODE", help="Print a rule's documentation and exit.")] = None,
    version: Annotated[Optional[bool], typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")] = None,
) -> None:
    """Find and fix nn.Module mistakes that silently break PyTorch training."""
    from torchfix_mod.config import ConfigError, effective_codes, resolve
    from torchfix_mod.docs import rule_safety
    from torchfix_mod.requirements import declared_floors
    from torchfix_mod.rule import RuleOptions, load_rules
    from torchfix_mod.runner import RunOptions, process_stdin

    all_rules = load_rules()
    if list_rules:
        for rule in all_rules:
            typer.echo(f"{rule.code}  {rule.name:<24} {rule_safety(rule):<28} {rule.summary}")
        return
    if explain is not None:
        rule = next((r for r in all_rules if r.code == explain.strip().upper()), None)
        if rule is None:
            raise typer.BadParameter(f"unknown rule code {explain!r}", param_hint="--explain")
        typer.echo(f"# {rule.code} ({rule.name})\n\n{rule.summary}\n\n{rule.docs()}")
        return
    if not paths:
        raise typer.BadParameter("give at least one file or directory (or - for stdin)", param_hint="PATH")
    if diff and write:
        raise typer.BadParameter("--diff and --write cannot be combined", param_hint="--diff/--write")
    all_codes = [r.code for r in all_rules]
    selected, ignored, extended = _codes(select), _codes(ignore), _codes(extend_select)
    for code in selected + ignored + extended:
        if not any(c.startswith(code) for c in all_codes):
            raise typer.BadParameter(f"{code!r} matches no rule", param_hint="--select/--ignore/--extend-select")
    use_stdin = [str(p) for p in paths] == ["-"]
    if "-" in [str(p) for p in paths] and not use_stdin:
        raise typer.BadParameter("- (stdin) cannot be combined with other paths", param_hint="PATH")
    config_paths = [Path(stdin_filename)] if use_stdin and stdin_filename else ([Path.cwd()] if use_stdin else list(paths))
    try:
        settings = resolve(config_paths, all_codes, config_path=config, isolated=isolated)
    except ConfigError as exc:
        typer.echo(f"torchfix-mod: error: {exc}", err=True)
        raise typer.Exit(2) from None
    defaults = [r.code for r in all_rules if r.default_enabled]
    codes = set(effective_codes(settings, selected, ignored, extended, all_codes, defaults))
    rules = [r for r in all_rules if r.code in codes]
    mode = "diff" if diff else "write" if write else "check"
    options = RunOptions(
        mode=mode,
        unsafe_fixes=_pick(unsafe_fixes, settings.unsafe_fixes),
        rule_options=RuleOptions(
            buffer_persistent=_pick(buffer_persistent, settings.buffer_persistent),
            requires=declared_floors(_common_parent(config_paths)),
        ),
        ignored_codes=settings.ignored_codes if settings.per_file_ignores else None,
    )
    if use_stdin:
        reports = [process_stdin(sys.stdin.buffer.read(), stdin_filename, rules, options)]
    else:
        reports = _run_files(list(paths), rules, options, settings, jobs, quiet, no_cache, force_exclude)
    if report is not None:
        from torchfix_mod.formats import migration_report

        try:
            report.write_text(migration_report(reports, all_rules, mode), encoding="utf-8")
        except OSError as exc:
            typer.echo(f"torchfix-mod: error: cannot write {report}: {exc.strerror or exc}", err=True)
            raise typer.Exit(2) from None
    _print(reports, mode, output_format, quiet, use_stdin, all_rules)
    code = exit_code(reports, mode)
    if exit_non_zero_on_fix and mode == "write" and code == 0 and any(r.changed for r in reports):
        code = 1
    raise typer.Exit(code)


def _pick(cli_value: Optional[bool], config_value: Optional[bool]) -> bool:
    if cli_value is not None:
        return cli_value
    return bool(config_value)


def _run_files(paths, rules, options, settings: Config, jobs, quiet, no_cache, force_exclude) -> list[FileReport]:
    from torchfix_mod.cache import Cache, project_root
    from torchfix_mod.runner import run

    cache = None
    if not no_cache:
        salt = "\0".join([settings.fingerprint(), repr(options.mode), repr(options.unsafe_fixes), repr(options.rule_options)])
        cache = Cache(project_root(paths, settings.root), salt)
    bar = _Bar() if not quiet and sys.stderr.isatty() and _enough_files(paths) else None
    try:
        return run(
            paths,
            rules,
            options,
            jobs=jobs or os.cpu_count() or 1,
            cache=cache,
            progress=bar,
            exclude=(lambda path, is_dir: settings.excluded(path)) if settings.path else None,
            default_excludes=settings.exclude is None,
            force_exclude=force_exclude,
        )
    finally:
        if bar is not None:
            bar.close()


def _enough_files(paths) -> bool:
    """A progress bar only for runs that take a moment: a directory, or many files."""
    return any(Path(p).is_dir() for p in paths) or len(paths) >= PROGRESS_MIN_FILES


def _print(reports, mode, output_format, quiet, use_stdin, all_rules) -> None:
    from torchfix_mod.report import error_lines, finding_lines, findings_json, note_lines, rule_statistics, summary

    # the diff (or, for stdin with --write, the fixed source) owns stdout, so it can be piped
    out = sys.stderr if mode == "diff" or (use_stdin and mode == "write") else sys.stdout
    if mode == "diff":
        sys.stdout.flush()
        for report in reports:
            sys.stdout.buffer.write(report.diff)
        sys.stdout.buffer.flush()
    elif use_stdin and mode == "write":
        sys.stdout.flush()
        sys.stdout.buffer.write(reports[0].output)
        sys.stdout.buffer.flush()
    if output_format is OutputFormat.json:
        print(findings_json(reports), file=out)
    elif output_format is OutputFormat.github:
        from torchfix_mod.formats import github_annotations

        for line in github_annotations(reports):
            print(line, file=out)
    elif output_format is OutputFormat.sarif:
        from torchfix_mod.formats import sarif

        print(sarif(reports, all_rules), file=out)
    else:
        for line in finding_lines(reports, only_remaining=mode != "check"):
            print(line, file=out)
    if output_format is not OutputFormat.github:
        for line in error_lines(reports):
            print(line, file=sys.stderr)
    if not quiet:
        for line in note_lines(reports):
            print(line, file=sys.stderr)
    if output_format is OutputFormat.text and not quiet:
        print(summary(reports, mode), file=out)
        for line in rule_statistics(reports, all_rules):
            print(line, file=out)


def exit_code(reports, mode: str) -> int:
    if any(r.errors for r in reports):
        return 2
    if mode == "diff":
        return 1 if any(r.diff for r in reports) else 0
    if mode == "write":
        return 1 if any(not d.fixed for r in reports for d in r.diagnostics) else 0
    return 1 if any(r.diagnostics for r in reports) else 0


def main() -> None:
    if sys.argv[1:] == ["--version"]:  # needs nothing else: answer before typer builds the parser
        print(f"torchfix-mod {__version__}")
        return
    app(prog_name="torchfix-mod")


def _common_parent(paths: list[Path]) -> Path:
    """The deepest directory holding every path (the project whose requirements apply)."""
    import os

    resolved = [str(p.resolve()) for p in paths] or [str(Path.cwd())]
    try:
        return Path(os.path.commonpath(resolved))
    except ValueError:  # paths on different drives
        return Path(resolved[0])
