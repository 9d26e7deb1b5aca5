"""Shared fixtures: the discovered rules and a one-call transform helper."""

from __future__ import annotations

import pytest

from torchfix_mod.engine import FileResult, Settings, transform_source
from torchfix_mod.rule import Rule, RuleOptions, load_rules

ALL_RULES = tuple(load_rules())


def transform(source: str, rules=ALL_RULES, unsafe: bool = False, **rule_options) -> FileResult:
    return transform_source(
        source,
        Settings(rules=tuple(rules), unsafe_fixes=unsafe, rule_options=RuleOptions(**rule_options)),
    )


@pytest.fixture(scope="session")
def all_rules() -> tuple[type[Rule], ...]:
    return ALL_RULES
