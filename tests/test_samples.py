"""Golden samples: running every rule on ``before.py`` must give ``after.py`` byte for byte."""

from __future__ import annotations

from pathlib import Path

import pytest

from torchfix_mod.engine import Settings, transform_source
from torchfix_mod.rule import RuleOptions, load_rules

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
SAMPLE_DIRS = sorted(p for p in SAMPLES.iterdir() if p.is_dir())
SETTINGS = Settings(rules=tuple(load_rules()), unsafe_fixes=False, apply_fixes=True, rule_options=RuleOptions())
UNSAFE_SETTINGS = Settings(rules=tuple(load_rules()), unsafe_fixes=True, apply_fixes=True, rule_options=RuleOptions())


def settings_for(sample: Path) -> Settings:
    """A sample whose rule only has unsafe fixes carries an ``UNSAFE`` marker file."""
    return UNSAFE_SETTINGS if (sample / "UNSAFE").is_file() else SETTINGS


def test_every_rule_has_a_sample():
    names = {d.name for d in SAMPLE_DIRS}
    assert {
        "TFM101", "TFM102", "TFM103", "TFM104", "TFM201", "TFM301", "TFM302",
        "TFM401", "TFM402", "TFM501", "TFM502", "TFM503",
    } <= names
    for d in SAMPLE_DIRS:
        assert (d / "before.py").is_file() and (d / "after.py").is_file(), d


@pytest.mark.parametrize("sample", SAMPLE_DIRS, ids=lambda p: p.name)
def test_before_becomes_after(sample: Path):
    before = (sample / "before.py").read_text(encoding="utf-8")
    after = (sample / "after.py").read_text(encoding="utf-8")
    result = transform_source(before, settings_for(sample))
    assert result.errors == []
    assert result.new_source != before, "the sample must contain something to fix"
    assert result.new_source == after
    # the sample exercises its own rule, and only that rule, and every finding is fixed
    assert {d.code for d in result.diagnostics} == {sample.name}
    assert all(d.fixed for d in result.diagnostics)


@pytest.mark.parametrize("sample", SAMPLE_DIRS, ids=lambda p: p.name)
def test_after_is_a_fixed_point(sample: Path):
    after = (sample / "after.py").read_text(encoding="utf-8")
    result = transform_source(after, settings_for(sample))
    assert result.errors == []
    assert result.new_source == after
    assert result.diagnostics == []


@pytest.mark.parametrize("sample", [d for d in SAMPLE_DIRS if (d / "UNSAFE").is_file()], ids=lambda p: p.name)
def test_unsafe_sample_is_only_reported_without_unsafe_fixes(sample: Path):
    before = (sample / "before.py").read_text(encoding="utf-8")
    result = transform_source(before, SETTINGS)
    assert result.errors == []
    assert result.new_source == before
    assert {d.code for d in result.diagnostics} == {sample.name}
    assert all(d.unsafe_fix and not d.fixed for d in result.diagnostics)
