"""What TFM301 and TFM302 share: tensors stored as attributes in ``__init__`` of an
nn.Module, and whether such an attribute may be turned into a buffer or a parameter."""

from __future__ import annotations

import libcst as cst

from torchfix_mod.analysis import (
    TENSOR_METHODS,
    TORCH_MODULE_BASE,
    TensorExpressions,
    class_methods,
    statements_after_super_init,
    top_statement,
)
from torchfix_mod.containers import SelfAssignment, self_assignments
from torchfix_mod.legacy_rule import Fix, Rule, RuleOptions
from torchfix_mod.torch_facts import MODULE_ATTRIBUTES


def class_body_names(cls: cst.ClassDef) -> set[str]:
    """Names defined in the class body: class attributes, methods, properties."""
    names: set[str] = set()
    if not isinstance(cls.body, cst.IndentedBlock):
        return names
    for stmt in cls.body.body:
        if isinstance(stmt, (cst.FunctionDef, cst.ClassDef)):
            names.add(stmt.name.value)
        elif isinstance(stmt, cst.SimpleStatementLine):
            for small in stmt.body:
                targets = []
                if isinstance(small, cst.Assign):
                    targets = [t.target for t in small.targets]
                elif isinstance(small, (cst.AnnAssign, cst.AugAssign)):
                    targets = [small.target]
                names.update(t.value for t in targets if isinstance(t, cst.Name))
    return names


class TensorAttributeRule(Rule):
    """Driver: the first store of each attribute in ``__init__`` that the subclass
    ``wants`` is fixed when it runs after ``nn.Module.__init__``, the name is free on
    the class family, and every other store to the attribute stays acceptable."""

    def wants(self, site: SelfAssignment, tensors: TensorExpressions) -> bool:
        raise NotImplementedError

    def message(self, site: SelfAssignment) -> str:
        raise NotImplementedError

    def fix_for(self, site: SelfAssignment) -> Fix | None:
        raise NotImplementedError

    def other_store_ok(self, value: cst.BaseExpression, site: SelfAssignment, tensors: TensorExpressions) -> bool:
        raise NotImplementedError

    def refuses_use(self, use: cst.Attribute) -> bool:
        return False

    def __init__(self, facts, options: RuleOptions) -> None:
        super().__init__(facts, options)
        self.classes: list[cst.ClassDef] = []

    def visit_ClassDef(self, node: cst.ClassDef) -> None:
        if self.facts.is_module_class(node):
            self.classes.append(node)

    def leave_Module(self, original_node: cst.Module) -> None:
        for cls in self.classes:
            init = next((f for f in class_methods(cls) if f.name.value == "__init__"), None)
            if init is not None:
                self.check_init(cls, init)

    # -- analysis -------------------------------------------------------------
    def check_init(self, cls: cst.ClassDef, init: cst.FunctionDef) -> None:
        facts = self.facts
        tensors = TensorExpressions(facts, self._local_tensors(init))
        after = statements_after_super_init(facts, init) or set()
        taken = self._names_taken(cls)
        if facts.customizes_attribute_access(cls) or "setattr" in facts.called:
            taken = None  # attributes may be reached or set out of the analysis' sight
        seen: set[str] = set()
        for site in self_assignments(facts, cls):
            if site.method is not init or site.attr in seen:
                continue
            seen.add(site.attr)  # only the first store can register the name
            if not self.wants(site, tensors):
                continue
            message = self.message(site)
            if top_statement(facts, site.assign, init) not in after:
                self.report(site.assign, f"{message} (not fixed: assigned before nn.Module.__init__ runs)")
                continue
            if taken is None or site.attr in taken or site.attr in MODULE_ATTRIBUTES:
                continue
            if not self._other_stores_acceptable(site, tensors):
                continue
            self.report(site.assign, message, self.fix_for(site), self.state_keys(site))

    def state_keys(self, site: SelfAssignment) -> tuple[str, ...]:
        """The state_dict keys the fix adds (a parameter is always saved)."""
        return (site.attr,)

    def _local_tensors(self, init: cst.FunctionDef) -> set[str]:
        """Local names of ``__init__`` bound only to tensor expressions (to a fixed point)."""
        facts = self.facts
        if not isinstance(init.body, cst.IndentedBlock) or not init.body.body:
            return set()
        scope = facts.scope(init.body.body[0])
        if scope is None:
            return set()
        values: dict[str, list[cst.BaseExpression]] = {}
        excluded: set[str] = set()
        for assignment in scope.assignments:
            holder = facts.parent(assignment.node) if isinstance(assignment.node, cst.Name) else None
            assign = facts.parent(holder) if isinstance(holder, cst.AssignTarget) else None
            if isinstance(assign, cst.Assign) and len(assign.targets) == 1 and holder.target is assignment.node:
                values.setdefault(assignment.name, []).append(assign.value)
            else:
                excluded.add(assignment.name)
        for assignment in scope.assignments:
            for access in assignment.references:
                if self.gets_requires_grad(access.node):
                    excluded.add(assignment.name)
        known: set[str] = set()
        changed = True
        while changed:
            changed = False
            checker = TensorExpressions(facts, known)
            for name, exprs in values.items():
                if name not in known and name not in excluded and all(checker.is_tensor(v) for v in exprs):
                    known.add(name)
                    changed = True
        return known

    def _names_taken(self, cls: cst.ClassDef) -> set[str] | None:
        """Attribute names the class, its bases or its subclasses in this file define
        (register_buffer raises KeyError on them, or bypasses a property's setter),
        or None when a base is unknown."""
        taken = set().union(*(class_body_names(member) for member in self.facts.class_family(cls)))
        for base in self.facts.base_classes(cls):
            if base == TORCH_MODULE_BASE:
                continue
            if not isinstance(base, cst.ClassDef):
                return None
            inherited = self._names_taken(base)
            if inherited is None:
                return None
            taken |= inherited
            taken |= {site.attr for site in self_assignments(self.facts, base)}
        return taken

    def _other_stores_acceptable(self, site: SelfAssignment, tensors: TensorExpressions) -> bool:
        """Every other store to the attribute in the file is one the fixed attribute accepts."""
        facts = self.facts
        for use in facts.attributes.get(site.attr, ()):
            if use is site.target:
                continue
            holder = facts.parent(use)
            if isinstance(holder, (cst.Element, cst.StarredElement)):
                return False  # `self.x, self.y = ...`: the value is not visible
            if self.refuses_use(use):
                return False
            if isinstance(holder, cst.AssignTarget):
                value = facts.parent(holder).value
            elif isinstance(holder, cst.AnnAssign) and holder.target is use:
                value = holder.value
            else:
                continue
            if value is None or (isinstance(value, cst.Name) and value.value == "None"):
                continue
            if not self.other_store_ok(value, site, tensors):
                return False
        return True

    def gets_requires_grad(self, node: cst.CSTNode) -> bool:
        """``t.requires_grad = True`` / ``t.requires_grad_()``: the tensor wants to be a Parameter."""
        parent = self.facts.parent(node)
        return isinstance(parent, cst.Attribute) and parent.value is node and parent.attr.value in {"requires_grad", "requires_grad_"} and not (
            parent.attr.value == "requires_grad" and not isinstance(self.facts.parent(parent), cst.AssignTarget)
        )

    @staticmethod
    def is_same_attribute_chain(value: cst.BaseExpression, site: SelfAssignment) -> bool:
        """``self.x = self.x.to(device)`` and the like keep a tensor a tensor."""
        node = value
        while isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute):
            if node.func.attr.value not in TENSOR_METHODS:
                return False
            node = node.func.value
        return node is not value and isinstance(node, cst.Attribute) and node.attr.value == site.attr
