"""The ``torchfix-mod`` command line: options in, one exit-code policy out.

Exit codes: 0 nothing to report (or, with --write, nothing left); 1 findings
(or, with --diff, a non-empty diff); 2 usage errors and files that could not
be read, decoded, parsed or written.
"""

from __future__ import annotations

import enum
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from torchfix_mod import __version__
from torchfix_mod.docs import rule_safety
from torchfix_mod.report import error_lines, finding_lines, findings_json, summary
from torchfix_mod.rule import RuleOptions, load_rules, select_rules
from torchfix_mod.runner import RunOptions, run

app = typer.Typer(add_completion=False, context_settings={"help_option_names": ["-h", "--help"]})


class OutputFormat(str, enum.Enum):
    text = "text"
    json = "json"


def _codes(value: Optional[str]) -> list[str]:
    return [c.strip().upper() for c in (value or "").split(",") if c.strip()]


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
    output_format: Annotated[OutputFormat, typer.Option("--output-format", help="How findings are printed.")] = OutputFormat.text,
    unsafe_fixes: Annotated[bool, typer.Option("--unsafe-fixes", help="Also apply fixes marked unsafe.")] = False,
    buffer_persistent: Annotated[
        bool, typer.Option("--buffer-persistent", help="TFM301 registers persistent buffers (adds state_dict keys).")
    ] = False,
    list_rules: Annotated[bool, typer.Option("--list-rules", help="List every rule: code, name, fix safety, summary.")] = False,
    explain: Annotated[Optional[str], typer.Option("--explain", metavar="CODE", help="Print a rule's documentation and exit.")] = None,
    version: Annotated[Optional[bool], typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")] = None,
) -> None:
    """Find and fix nn.Module mistakes that silently break PyTorch training."""
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
        raise typer.BadParameter("give at least one file or directory", param_hint="PATH")
    if diff and write:
        raise typer.BadParameter("--diff and --write cannot be combined", param_hint="--diff/--write")
    selected, ignored = _codes(select), _codes(ignore)
    for code in selected + ignored:
        if not any(r.code.startswith(code) for r in all_rules):
            raise typer.BadParameter(f"{code!r} matches no rule", param_hint="--select/--ignore")
    rules = select_rules(all_rules, selected, ignored)
    mode = "diff" if diff else "write" if write else "check"
    options = RunOptions(mode=mode, unsafe_fixes=unsafe_fixes, rule_options=RuleOptions(buffer_persistent=buffer_persistent))
    reports = run(paths, rules, options)

    # the diff owns stdout in --diff mode, so it can be piped to `git apply`
    out = sys.stderr if mode == "diff" else sys.stdout
    if mode == "diff":
        sys.stdout.flush()
        for report in reports:
            sys.stdout.buffer.write(report.diff)
        sys.stdout.buffer.flush()
    if output_format is OutputFormat.json:
        print(findings_json(reports), file=out)
    else:
        for line in finding_lines(reports, only_remaining=mode != "check"):
            print(line, file=out)
    for line in error_lines(reports):
        print(line, file=sys.stderr)
    if output_format is OutputFormat.text:
        print(summary(reports, mode), file=out)
    raise typer.Exit(exit_code(reports, mode))


def exit_code(reports, mode: str) -> int:
    if any(r.errors for r in reports):
        return 2
    if mode == "diff":
        return 1 if any(r.diff for r in reports) else 0
    if mode == "write":
        return 1 if any(not d.fixed for r in reports for d in r.diagnostics) else 0
    return 1 if any(r.diagnostics for r in reports) else 0


def main() -> None:
    app(prog_name="torchfix-mod")
