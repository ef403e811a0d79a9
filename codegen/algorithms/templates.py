"""Algorithms that call a generated module's own functions, written once as real Python.

A *template* is a top-level function of an algorithm module, marked with :func:`template`,
that calls some *callbacks* by name (``equation``, ``rate``, ``stage``, ...): module-level
placeholders that say the callback's signature and raise when called.  :func:`splice` turns a
template into source for a generated module: the callbacks renamed to the module's compiled
functions, the templates it calls spliced before it under the module's prefix, and the
constants and cached algorithms it reads imported from its own module.  The generated module
then holds plain ``@njit(cache=True)`` functions that call each other as globals, which
numba compiles, caches on disk and runs in ``prange`` loops like hand-written code.

Why not pass the callbacks as arguments, or close over them in a factory: numba leaves the
address of a function passed as an argument in the machine code where the call is not
inlined ("dynamic globals") and then refuses to cache the caller; a factory's closures,
called from a ``parallel=True`` grid kernel, crashed the process (numba 0.68, measured: a
segmentation fault in the parity test of a Root's grid kernel).  Splicing
keeps the algorithm readable, ruff-checked and unit-tested here (:func:`instantiate` compiles
the same spliced text on toy callbacks) and the generated code as fast as before.

May import: the standard library and numba.
"""

from __future__ import annotations

import ast
import builtins
import inspect
import sys
import textwrap
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import ModuleType

import numba as nb

#: Attribute that marks a template function.
TEMPLATE_MARK = "__netderive_template__"
#: Module names a template may use as such: every generated module imports them under these
#: names.
MODULE_NAMES = {"math": "math", "np": "numpy", "nb": "numba"}
#: How :func:`instantiate` compiles a spliced function (as the generated modules do, without
#: the on-disk cache: the source lives in memory).
TEST_JIT = nb.njit(error_model="numpy")


def template(function: Callable) -> Callable:
    """Mark ``function`` as a template (it stays a plain Python function)."""
    setattr(function, TEMPLATE_MARK, True)
    return function


def is_template(value: object) -> bool:
    """Whether ``value`` is a function marked by :func:`template`."""
    return callable(value) and getattr(value, TEMPLATE_MARK, False)


@dataclass
class Spliced:
    """Source for a generated module: ``functions`` (name, source without decorator) in the
    order they must appear, and ``imports`` (module, name) of the constants and cached
    algorithms they read."""

    functions: list[tuple[str, str]] = field(default_factory=list)
    imports: list[tuple[str, str]] = field(default_factory=list)


def _free_names(tree: ast.FunctionDef) -> set[str]:
    """Names the function reads that it neither binds nor takes as arguments."""
    bound = {a.arg for a in (*tree.args.posonlyargs, *tree.args.args, *tree.args.kwonlyargs)}
    loaded = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            if isinstance(node.ctx, ast.Store | ast.Del):
                bound.add(node.id)
            else:
                loaded.add(node.id)
    return loaded - bound


class _Rename(ast.NodeTransformer):
    def __init__(self, names: Mapping[str, str]) -> None:
        self.names = names

    def visit_Name(self, node: ast.Name) -> ast.Name:  # noqa: N802 (ast's visitor names)
        if node.id in self.names:
            return ast.copy_location(ast.Name(self.names[node.id], node.ctx), node)
        return node


def splice(function: Callable, prefix: str, callbacks: Mapping[str, str],
           imported: Callable[[str, str], str] = lambda module, name: name,
           _done: dict[str, str] | None = None, _out: Spliced | None = None) -> Spliced:
    """The template ``function`` as generated-module source named ``{prefix}_{name}``.

    ``callbacks`` maps each callback the template (or a template it calls) uses to the name
    of the generated module's function; a template it calls is spliced too (once, before
    it); any other global it reads (a named constant, a cached algorithm) is imported from
    its module under the name ``imported(module, name)`` returns.  Module names of
    :data:`MODULE_NAMES` and builtins stay as they are.
    """
    done = {} if _done is None else _done
    out = Spliced() if _out is None else _out
    if not is_template(function):
        raise TypeError(f"{function.__qualname__} is not a template")
    tree = ast.parse(textwrap.dedent(inspect.getsource(function))).body[0]
    assert isinstance(tree, ast.FunctionDef)
    tree.decorator_list = []
    module = sys.modules[function.__module__]
    renames: dict[str, str] = {}
    for name in sorted(_free_names(tree)):
        value = getattr(module, name, None)
        if name in callbacks:
            renames[name] = callbacks[name]
        elif is_template(value):
            if value.__name__ not in done:
                splice(value, prefix, callbacks, imported, done, out)
            renames[name] = done[value.__name__]
        elif isinstance(value, ModuleType):
            if MODULE_NAMES.get(name) != value.__name__:
                raise TypeError(f"template {function.__name__}: module {name} "
                                f"({value.__name__}) is not one of {sorted(MODULE_NAMES)}")
        elif hasattr(module, name):
            if name in _placeholders(module):
                raise TypeError(f"template {function.__name__}: callback {name} not given")
            home = module.__name__
            if callable(value) and sys.modules.get(getattr(value, "__module__", "")) is not None:
                home = value.__module__  # a cached algorithm: from the module defining it
            out.imports.append((home, name))
            renames[name] = imported(home, name)
        elif not hasattr(builtins, name):
            raise NameError(f"template {function.__name__}: unknown name {name}")
    tree.returns = None
    for a in (*tree.args.posonlyargs, *tree.args.args, *tree.args.kwonlyargs):
        a.annotation = None
    new_name = f"{prefix}_{function.__name__}"
    tree.name = new_name
    tree = _Rename(renames).visit(tree)
    ast.fix_missing_locations(tree)
    source = (f"# spliced from {function.__module__}.{function.__name__}\n"
              + ast.unparse(tree))
    done[function.__name__] = new_name
    out.functions.append((new_name, source))
    return out


#: Callback placeholders are functions decorated with :func:`callback`; their names per module.
_PLACEHOLDERS: dict[str, set[str]] = {}


def callback(function: Callable) -> Callable:
    """Declare a callback placeholder: the signature (and docstring) of a function that a
    generated module supplies; calling the placeholder itself is an error."""
    _PLACEHOLDERS.setdefault(function.__module__, set()).add(function.__name__)

    def placeholder(*args: object) -> object:
        raise NotImplementedError(f"{function.__name__} is a callback placeholder: splice "
                                  "the template with a function for it")

    placeholder.__name__ = function.__name__
    placeholder.__qualname__ = function.__qualname__
    placeholder.__doc__ = function.__doc__
    placeholder.__module__ = function.__module__
    return placeholder


def _placeholders(module: ModuleType) -> set[str]:
    return _PLACEHOLDERS.get(module.__name__, set())


def instantiate(function: Callable, callbacks: Mapping[str, Callable],
                jit: Callable = TEST_JIT) -> Callable:
    """The template ``function`` compiled on the given callbacks (compiled functions), from
    the same spliced source a generated module holds: for tests on toy problems."""
    names = {name: f"_callback_{name}" for name in callbacks}
    spliced = splice(function, "_test", names)
    namespace: dict[str, object] = {"math": sys.modules["math"], "np": sys.modules["numpy"],
                                    "nb": nb}
    namespace.update({names[k]: v for k, v in callbacks.items()})
    for module, name in spliced.imports:
        namespace[name] = getattr(sys.modules[module], name)
    for name, source in spliced.functions:
        exec(compile(source, f"<spliced {name}>", "exec"), namespace)  # noqa: S102
        namespace[name] = jit(namespace[name])
    return namespace[spliced.functions[-1][0]]
