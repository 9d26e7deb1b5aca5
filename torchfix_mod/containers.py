"""What TFM101/TFM102 share: finding ``self.x = <container>`` in nn.Module methods
and deciding whether the container may become an ``nn.ModuleList``/``nn.ModuleDict``."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import libcst as cst
import libcst.matchers as m

from torchfix_mod.analysis import (
    REGISTERING_CALLS,
    ContainerUses,
    FileFacts,
    Verdict,
    class_methods,
    module_valued_local,
    self_name,
    statements_after_super_init,
    top_statement,
)
from torchfix_mod.legacy_rule import Fix, Rule


@dataclass
class SelfAssignment:
    cls: cst.ClassDef
    method: cst.FunctionDef
    self_arg: str
    assign: cst.Assign
    target: cst.Attribute

    @property
    def attr(self) -> str:
        return self.target.attr.value

    @property
    def value(self) -> cst.BaseExpression:
        return self.assign.value


def self_assignments(facts: FileFacts, cls: cst.ClassDef) -> list[SelfAssignment]:
    """Every ``self.x = value`` (single target) directly inside a method of ``cls``."""
    key = ("self_assignments", cls)
    if key not in facts.memo:
        facts.memo[key] = list(_find_self_assignments(facts, cls))
    return facts.memo[key]


def _find_self_assignments(facts: FileFacts, cls: cst.ClassDef) -> Iterator[SelfAssignment]:
    for method in class_methods(cls):
        self_arg = self_name(method)
        if self_arg is None:
            continue
        pattern = m.Assign(targets=[m.AssignTarget(target=m.Attribute(value=m.Name(self_arg)))])
        for assign in m.findall(method, pattern):
            if facts.enclosing_function(assign) is method:
                yield SelfAssignment(cls, method, self_arg, assign, assign.targets[0].target)


def runs_after_super_init(facts: FileFacts, site: SelfAssignment) -> bool:
    """Registering a submodule needs nn.Module.__init__ to have run first."""
    if site.method.name.value != "__init__":
        return True
    after = statements_after_super_init(facts, site.method)
    return after is not None and top_statement(facts, site.assign, site.method) in after


class ContainerRule(Rule):
    """Shared driver: collect nn.Module classes while visiting, decide at the end of
    the file (uses of an attribute anywhere in the file can block a conversion)."""

    kind: str  # "list" or "dict"
    container: str  # "ModuleList", "ModuleDict", "ParameterList", "ParameterDict"
    noun: str = "nn.Modules"
    methods: frozenset[str] | None = None  # what the container supports (None: ModuleList/ModuleDict)
    holds_modules: bool = True

    def __init__(self, facts, options) -> None:
        super().__init__(facts, options)
        self.classes: list[cst.ClassDef] = []

    def visit_ClassDef(self, node: cst.ClassDef) -> None:
        if self.facts.is_module_class(node):
            self.classes.append(node)

    def leave_Module(self, original_node: cst.Module) -> None:
        for cls in self.classes:
            for site in self_assignments(self.facts, cls):
                self.check(site)

    def is_element(self, expr: cst.BaseExpression) -> bool:
        """A construction of what the container holds."""
        return self.facts.is_module_construction(expr)

    def module_value(self, expr: cst.BaseExpression) -> bool:
        return self.is_element(expr) or module_valued_local(self.facts, expr, self.is_element)

    def uses(self, site: SelfAssignment) -> ContainerUses:
        return ContainerUses(self.facts, self.kind, site.target, self.module_value, self.methods, self.holds_modules)

    def check(self, site: SelfAssignment) -> None:
        raise NotImplementedError

    def conclude(self, site: SelfAssignment, uses: ContainerUses, message: str, fix_value, unsafe: bool = False) -> None:
        """Report the finding, with a fix when every use of the attribute allows one."""
        verdict = uses.check(site.attr)
        if verdict in (Verdict.ELSEWHERE, Verdict.NOT_MODULES):
            return  # registered by the code it is handed to, or not a container of modules
        if self.facts.called & REGISTERING_CALLS or self.facts.customizes_attribute_access(site.cls):
            # modules may be registered by name elsewhere (add_module/setattr), or the
            # attribute reached through __getattr__/__dict__: converting could break either
            return
        if verdict == Verdict.UNSUPPORTED:
            self.report(site.assign, f"{message} (not fixed: {uses.reason})")
            return
        if not runs_after_super_init(self.facts, site):
            self.report(site.assign, f"{message} (not fixed: assigned before nn.Module.__init__ runs)")
            return
        reference = self.facts.nn_reference(self.container, site.assign)
        if reference is None:
            self.report(site.assign, f"{message} (not fixed: no usable name for torch.nn.{self.container})")
            return
        expr, need = reference

        def edit(value: cst.CSTNode) -> cst.CSTNode:
            return fix_value(expr, value)

        fix = Fix({site.value: edit}, (need,) if need else (), unsafe=unsafe)
        self.report(site.assign, message, fix, (f"{site.attr}.*",))


def wrap_call(func: cst.BaseExpression, value: cst.BaseExpression | None) -> cst.Call:
    """``func(value)``; a bare tuple gets the parentheses it needs as an argument."""
    if value is None:
        return cst.Call(func=func)
    if isinstance(value, cst.Tuple) and not value.lpar:
        value = value.with_changes(lpar=[cst.LeftParen()], rpar=[cst.RightParen()])
    return cst.Call(func=func, args=[cst.Arg(value)])
