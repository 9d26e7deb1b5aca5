"""Every rule's own examples: fixes produce exactly the expected code and are stable;
leave-alone cases stay byte-identical even with --unsafe-fixes."""

from __future__ import annotations

import ast

import pytest

from conftest import ALL_RULES, transform

from torchfix_mod.rule import Applicability

FIX_CASES = [
    pytest.param(rule, case, id=f"{rule.code}-fix-{i}") for rule in ALL_RULES for i, case in enumerate(rule.fixes)
]
KEEP_CASES = [
    pytest.param(rule, case, id=f"{rule.code}-keep-{i}") for rule in ALL_RULES for i, case in enumerate(rule.keeps)
]


@pytest.mark.parametrize(("rule", "case"), FIX_CASES)
def test_fix_example(rule, case):
    result = transform(case.before, rules=[rule], unsafe=case.unsafe, **case.options)
    assert not result.errors
    assert result.new_source == case.after
    assert any(d.code == rule.code and d.fixed for d in result.diagnostics)
    ast.parse(result.new_source)
    again = transform(result.new_source, rules=[rule], unsafe=case.unsafe, **case.options)
    assert again.new_source == result.new_source, "fix is not stable"
    assert not any(d.fix_available for d in again.diagnostics)


@pytest.mark.parametrize(("rule", "case"), [p for p in FIX_CASES if p.values[1].unsafe])
def test_unsafe_fix_needs_opt_in(rule, case):
    result = transform(case.before, rules=[rule], unsafe=False, **case.options)
    assert result.new_source == case.before
    findings = [d for d in result.diagnostics if d.code == rule.code]
    assert findings and all(d.unsafe_fix and not d.fix_available for d in findings)


@pytest.mark.parametrize(("rule", "case"), KEEP_CASES)
def test_keep_example(rule, case):
    result = transform(case.source, rules=[rule], unsafe=True)
    assert not result.errors
    assert result.new_source == case.source
    findings = [d for d in result.diagnostics if d.code == rule.code]
    assert bool(findings) == case.reported
    assert not any(d.fix_available for d in findings)


@pytest.mark.parametrize(("rule", "case"), FIX_CASES)
def test_fix_examples_survive_all_rules(rule, case):
    """Running every rule together never breaks a rule's example."""
    result = transform(case.before, unsafe=case.unsafe, **case.options)
    assert not result.errors
    ast.parse(result.new_source)
    again = transform(result.new_source, unsafe=case.unsafe, **case.options)
    assert again.new_source == result.new_source


def test_rule_metadata(all_rules):
    codes = [r.code for r in all_rules]
    assert len(codes) == len(set(codes)), "rule codes must be unique"
    assert {"TFM101", "TFM102", "TFM201", "TFM301"} <= set(codes)
    for rule in all_rules:
        docs = rule.docs()
        for section in ("## What it does", "## Why is this bad?", "## Example", "## Use instead", "## Fix safety"):
            assert section in docs, f"{rule.code} docs lack {section!r}"
        assert rule.keeps, f"{rule.code} needs leave-alone examples"
        if rule.applicability is not Applicability.DISPLAY_ONLY:
            assert rule.fixes, f"{rule.code} needs fix examples"
        else:  # report-only: its leave-alone examples must include reported ones
            assert not rule.fixes and any(k.reported for k in rule.keeps), f"{rule.code}: report-only examples"
