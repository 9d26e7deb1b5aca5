"""Project-wide knowledge: which classes of the run's files are nn.Module subclasses.

A rule sees one file. When ``Block`` comes from ``from .blocks import Block``, whether
``Block()`` builds a module is decided in another file. Before the rules run, a cheap
pre-pass reads every file of the run with :mod:`ast` (no LibCST), records its top-level
classes and imports, and resolves across files (relative and absolute imports, re-exports
through ``__init__.py``, chains of subclasses) which classes derive from ``torch.nn.Module``.
The result is a flat table from every importable spelling of such a class
(``pkg.blocks.Block``, ``pkg.Block`` when re-exported) to what the rules need to know.

Only what the pre-pass can prove enters the table: a name bound more than once at the top
of its module, or bound under ``if``/``try``, counts as unknown.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import re
import sys
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from torchfix_mod.syntax import dotted, generic_origin, nodes, walk
from torchfix_mod.torch_facts import NN_MODULE_CLASSES

ACCESS_HOOKS = frozenset(
    {"__getattr__", "__getattribute__", "__setattr__", "__delattr__", "__getstate__", "__setstate__"}
)


@dataclass(frozen=True)
class ProjectClass:
    """What the rules may rely on about a class defined in another file of the run."""

    module_subclass: bool  # derives from torch.nn.Module
    customizes_access: bool  # it or a base overrides attribute access or touches __dict__
    # it, or a class derived from it, is one of several bases of a class of the run: what
    # `super()` reaches from it then depends on that class's MRO
    mixed: bool = False
    # every class above it is of the run or of torch.nn, and none defines `__call__`: calling
    # an instance runs nn.Module's `__call__`, hence `forward` with its hooks
    plain_call: bool = False
    # for it and each class of the run above it, the methods it defines and the names it calls
    # as methods (`self_names`): a subclass method of such a name may run from their `forward`
    # or hooks. The classes' own sets, shared, not merged.
    names: tuple[frozenset[str], ...] = ()

    def knows_name(self, name: str) -> bool:
        return any(name in group for group in self.names)


@dataclass
class ClassSummary:
    bases: list[str | None]  # each base as a dotted name in the file's own spelling (None: not a name)
    customizes_access: bool
    defines_call: bool = False
    names: frozenset[str] = frozenset()  # `self_names`: what a subclass method may be reached by


@dataclass
class FileSummary:
    """What the pre-pass keeps of one file: enough to resolve names, nothing more."""

    module: str  # dotted module name ("pkg.blocks"; a package's __init__ is "pkg")
    is_package: bool
    classes: dict[str, ClassSummary] = field(default_factory=dict)
    imports: dict[str, str] = field(default_factory=dict)  # local name -> absolute dotted target


@functools.lru_cache(maxsize=65536)
def module_name(path: Path) -> tuple[str, bool]:
    """The dotted name Python would import ``path`` under, from the ``__init__.py`` files
    above it; a file outside any package is a top-level module named after its stem."""
    path = Path(path)
    # a file that is not a link is where its real directory says: one realpath per directory
    path = path.resolve() if path.is_symlink() else _real_directory(path.parent) / path.name
    is_package = path.name == "__init__.py"
    parts = _package_parts(path.parent)
    return ".".join(parts if is_package else (*parts, path.stem)), is_package


@functools.lru_cache(maxsize=4096)
def _real_directory(directory: Path) -> Path:
    return directory.resolve()


@functools.lru_cache(maxsize=4096)
def _package_parts(directory: Path) -> tuple[str, ...]:
    """The package a directory is, as name parts (empty outside any package)."""
    if directory.parent == directory or not (directory / "__init__.py").is_file():
        return ()
    return (*_package_parts(directory.parent), directory.name)


def absolute(name: str, module: str, is_package: bool) -> str | None:
    """``..layers.Attention`` seen from ``module`` as an absolute dotted name."""
    if not name.startswith("."):
        return name
    level = len(name) - len(name.lstrip("."))
    package = module.split(".") if is_package else module.split(".")[:-1]
    if level - 1 > len(package) or (level - 1 == len(package) and not name.lstrip(".")):
        return None  # beyond the top-level package
    base = package[: len(package) - (level - 1)]
    rest = name[level:]
    return ".".join([*base, rest] if rest else base) or None


_dotted = dotted


def _customizes_access(cls: ast.ClassDef, mentions_dict: bool) -> bool:
    for item in cls.body:
        if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)) and item.name in ACCESS_HOOKS:
            return True
    return mentions_dict and any(n.attr == "__dict__" for n in nodes(cls, ast.Attribute))


# names through which a class can make calling an instance mean something else than nn.Module's
# `__call__` (`__init_subclass__` may set them on every subclass)
CALL_HOOKS = frozenset({"__call__", "_call_impl", "_wrapped_call_impl", "__init_subclass__"})
# torch.nn classes whose instances refuse to be called (they raise instead of running forward)
UNCALLABLE_TORCH_CLASSES = frozenset({"ParameterList", "ParameterDict"})


def binds_call(cls: ast.ClassDef, tree: ast.Module | None = None) -> bool:
    """The class may give calling an instance a meaning of its own: a binding of a name of
    ``CALL_HOOKS`` anywhere in its body (under ``if``/``try`` too), or a decorator defined in
    ``tree`` (its file) that mentions one (``cls.__call__ = ...``). An imported decorator (a
    registry's ``register``, ``six.add_metaclass``) is taken to hand the class back."""
    if cls.decorator_list and tree is not None:
        local = {stmt.name: stmt for stmt in tree.body if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))}
        for decorator in cls.decorator_list:
            root = decorator.func if isinstance(decorator, ast.Call) else decorator
            while isinstance(root, ast.Attribute):
                root = root.value
            definition = local.get(root.id) if isinstance(root, ast.Name) else None
            if definition is not None and any(
                (isinstance(n, ast.Attribute) and n.attr in CALL_HOOKS) or (isinstance(n, ast.Name) and n.id in CALL_HOOKS)
                or (isinstance(n, ast.Constant) and n.value in CALL_HOOKS)
                for n in walk(definition)
            ):
                return True
    stack: list[ast.stmt] = list(cls.body)
    while stack:
        item = stack.pop()
        if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            if item.name in CALL_HOOKS:
                return True
            continue
        for node in walk(item):
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store) and node.id in CALL_HOOKS:
                return True
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name in CALL_HOOKS:
                return True
    return False


_PATCHED_CALL = re.compile(r"\b([A-Za-z_]\w*)\s*\.\s*(?:" + "|".join(sorted(CALL_HOOKS)) + r")\s*=(?!=)")
_METHOD_CALL = re.compile(r"\.\s*([A-Za-z_]\w*)\s*\(")


def patched_call_classes(tree: ast.Module, source: str | None = None) -> set[str]:
    """Names ``X`` whose call hook the file sets from outside the class (``X.__call__ = f``);
    read from the text when it is given (a superset: comments and strings count too)."""
    if source is not None:
        if not any(name in source for name in ("__call__", "_call_impl", "__init_subclass__")):
            return set()  # the common case, without running the pattern over the whole text
        return set(_PATCHED_CALL.findall(source))
    return {
        node.value.id for node in nodes(tree, ast.Attribute)
        if node.attr in CALL_HOOKS and isinstance(node.ctx, ast.Store) and isinstance(node.value, ast.Name)
    }


def self_names(cls: ast.ClassDef, lines: list[str] | None = None) -> frozenset[str]:
    """The methods the class defines and the names it calls as methods (``self.loss(...)``): a
    subclass method of one of these names may be reached by the class's own ``forward`` or
    hooks. From the class's text when its ``lines`` are given: every ``.name(`` there, a
    superset of the calls on the instance."""
    found = {item.name for item in cls.body if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef))}
    if lines is not None:
        found.update(_METHOD_CALL.findall("\n".join(lines[cls.lineno - 1 : cls.end_lineno])))
        return frozenset(map(sys.intern, found))  # the same few hundred names recur in every class
    for node in nodes(cls, ast.Call):
        func = node.func
        if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
            found.add(func.attr)
    return frozenset(found)


def _mentions_dict(source: str | None) -> bool:
    """Whether ``__dict__`` may be spelled in the file. Identifiers are NFKC-normalised
    (``__ｄict__`` is ``__dict__``), so text that is not ASCII is looked at normalised."""
    if source is None or "__dict__" in source:
        return True
    return not source.isascii() and "__dict__" in unicodedata.normalize("NFKC", source)


def summarize(tree: ast.Module, path: Path, source: str | None = None) -> FileSummary:
    """Top-level classes and imports of one parsed file (``source``, its text, lets a class
    be cleared of reaching into ``__dict__`` without walking it)."""
    mentions_dict = _mentions_dict(source)
    module, is_package = module_name(path)
    summary = FileSummary(module, is_package)
    bound: dict[str, int] = {}

    def bind(name: str) -> None:
        bound[name] = bound.get(name, 0) + 1

    patched = patched_call_classes(tree, source)
    lines = source.splitlines() if source is not None else None
    for stmt in tree.body:
        if isinstance(stmt, ast.ClassDef):
            bind(stmt.name)
            summary.classes[stmt.name] = ClassSummary(
                [_dotted(generic_origin(b)) for b in stmt.bases], _customizes_access(stmt, mentions_dict),
                binds_call(stmt, tree) or stmt.name in patched, self_names(stmt, lines),
            )
            if stmt.keywords and any(k.arg == "metaclass" for k in stmt.keywords):
                summary.classes[stmt.name].bases.append(None)  # a metaclass may change anything
        elif isinstance(stmt, ast.Import):
            for alias in stmt.names:
                if alias.asname:
                    bind(alias.asname)
                    summary.imports[alias.asname] = alias.name
                else:  # `import a.b` binds `a`
                    top = alias.name.split(".")[0]
                    bind(top)
                    summary.imports[top] = top
        elif isinstance(stmt, ast.ImportFrom):
            source = absolute("." * stmt.level + (stmt.module or ""), module, is_package)
            for alias in stmt.names:
                if alias.name == "*":
                    continue
                local = alias.asname or alias.name
                bind(local)
                if source is not None:
                    summary.imports[local] = f"{source}.{alias.name}"
        else:
            for node in _bindings(stmt):
                bind(node)
    for name, count in bound.items():
        if count > 1:  # rebound: which binding wins depends on the run
            summary.classes.pop(name, None)
            summary.imports.pop(name, None)
    return summary


def _bindings(stmt: ast.stmt) -> Iterable[str]:
    """Names a statement other than a class or an import may bind at module level."""
    if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
        yield stmt.name
        return
    for node in walk(stmt):
        if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            yield node.id
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            yield node.name
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                yield (alias.asname or alias.name).split(".")[0]


# the qualified names of ``nn.Parameter`` (TFM103 / TFM104)
PARAMETER_CLASSES = frozenset({"torch.nn.Parameter", "torch.nn.parameter.Parameter"})


# bases that add neither attribute access hooks nor a `__call__` for instances
NEUTRAL_BASES = frozenset({"typing.Generic", "typing.Protocol", "abc.ABC", "object", "builtins.object"})


def is_torch_module_class(qname: str) -> bool:
    """``torch.nn.X`` / ``torch.nn.modules.<file>.X`` naming an nn.Module subclass."""
    parts = qname.split(".")
    if parts[:2] != ["torch", "nn"]:
        return False
    if len(parts) == 3:
        return parts[2] in NN_MODULE_CLASSES
    return len(parts) == 5 and parts[2] == "modules" and parts[4] in NN_MODULE_CLASSES


class ProjectIndex:
    """Every importable spelling of the run's classes, resolved across files."""

    def __init__(self, classes: dict[str, ProjectClass], modules: frozenset[str] = frozenset()) -> None:
        self.classes = classes
        self.modules = modules  # every module of the run: its names are known, class or not
        digest = hashlib.sha256()
        for name in sorted(classes):
            info = classes[name]
            digest.update(
                f"{name}:{int(info.module_subclass)}{int(info.customizes_access)}{int(info.mixed)}{int(info.plain_call)}"
                f"{','.join(sorted(info.names[0])) if info.names else ''}\n".encode()
            )
        for name in sorted(modules):
            digest.update(f"module {name}\n".encode())
        self.fingerprint = digest.hexdigest()

    def holds(self, qname: str, module: str | None, is_package: bool = False) -> bool:
        """The qualified name belongs to a module of the run (whatever it names there)."""
        if module is None and qname.startswith("."):
            return False
        name = absolute(qname, module or "", is_package)
        if not name:
            return False
        parts = name.split(".")
        return any(".".join(parts[:cut]) in self.modules for cut in range(1, len(parts)))

    def lookup(self, qname: str, module: str | None, is_package: bool = False) -> ProjectClass | None:
        """The class a qualified name (as LibCST gives it, relative or not) refers to."""
        if module is None and qname.startswith("."):
            return None
        name = absolute(qname, module or "", is_package)
        return self.classes.get(name) if name else None

    def __len__(self) -> int:
        return len(self.classes)


def build_index(summaries: Sequence[FileSummary]) -> ProjectIndex:
    modules = {s.module: s for s in summaries}
    if len(modules) != len(summaries):  # two files claim one module name: trust neither
        seen: dict[str, int] = {}
        for s in summaries:
            seen[s.module] = seen.get(s.module, 0) + 1
        modules = {name: s for name, s in modules.items() if seen[name] == 1}

    def resolve(qname: str, depth: int = 0) -> tuple[str, str] | str | None:
        """A dotted name -> (module, class) of a project class, or the external name."""
        if depth > 20:
            return None
        parts = qname.split(".")
        for cut in range(len(parts) - 1, 0, -1):
            mod = ".".join(parts[:cut])
            summary = modules.get(mod)
            if summary is None:
                continue
            head, rest = parts[cut], parts[cut + 1 :]
            if head in summary.classes and not rest:
                return (mod, head)
            if head in summary.imports:
                return resolve(".".join([summary.imports[head], *rest]), depth + 1)
            return None  # a name the module does not bind (as far as the pre-pass can tell)
        return qname

    def base_target(summary: FileSummary, base: str | None):
        if base is None:
            return None
        head, _, rest = base.partition(".")
        if head in summary.classes:
            target = f"{summary.module}.{base}"
        elif head in summary.imports:
            target = summary.imports[head] + (f".{rest}" if rest else "")
        else:
            return None  # a builtin or a name the pre-pass cannot see
        return resolve(target)

    verdict: dict[tuple[str, str], ProjectClass | None] = {}

    def info(key: tuple[str, str], stack: frozenset = frozenset()) -> ProjectClass | None:
        if key in verdict:
            return verdict[key]
        if key in stack:
            return None
        cls = modules[key[0]].classes[key[1]]
        module_subclass, customizes, known = False, cls.customizes_access, True
        plain_call = not cls.defines_call
        names: list[frozenset[str]] = [cls.names]
        for base in cls.bases:
            if base == "object":
                continue
            target = base_target(modules[key[0]], base)
            if target in NEUTRAL_BASES:
                continue
            if isinstance(target, tuple):
                base_info = info(target, stack | {key})
                if base_info is None:
                    known = False
                    continue
                module_subclass |= base_info.module_subclass
                customizes |= base_info.customizes_access
                plain_call &= base_info.plain_call
                names.extend(group for group in base_info.names if not any(group is seen for seen in names))
            elif isinstance(target, str) and is_torch_module_class(target):
                module_subclass = True
                plain_call &= target.rsplit(".", 1)[-1] not in UNCALLABLE_TORCH_CLASSES
            elif target != "object":
                known = False  # an outside base could customize attribute access
        plain_call &= known
        result = (
            ProjectClass(module_subclass, customizes or not known, plain_call=plain_call, names=tuple(names))
            if (module_subclass or known) else None
        )
        verdict[key] = result
        return result

    # classes that are one of several bases somewhere, and every class of the run above them
    mixed: set[tuple[str, str]] = set()
    for summary in modules.values():
        for cls in summary.classes.values():
            if len(cls.bases) < 2:
                continue
            stack = [base_target(summary, base) for base in cls.bases]
            while stack:
                key = stack.pop()
                if not isinstance(key, tuple) or key in mixed:
                    continue
                mixed.add(key)
                stack.extend(base_target(modules[key[0]], base) for base in modules[key[0]].classes[key[1]].bases)

    def entry(key: tuple[str, str]) -> ProjectClass | None:
        found = info(key)
        if found is None or not found.module_subclass:
            return None
        return ProjectClass(found.module_subclass, found.customizes_access, key in mixed, found.plain_call, found.names)

    table: dict[str, ProjectClass] = {}
    for summary in modules.values():
        for name in summary.classes:
            found = entry((summary.module, name))
            if found is not None:
                table[f"{summary.module}.{name}"] = found
        for local, target in summary.imports.items():  # re-exports: `pkg.Block`
            resolved = resolve(target)
            if isinstance(resolved, tuple):
                found = entry(resolved)
                if found is not None:
                    table[f"{summary.module}.{local}"] = found
    return ProjectIndex(table, frozenset(modules))
