"""Strategy classes from a config's `kind`, and the fingerprint a session stores of each strategy.

A kind is one of:
- "path/to/file.py:ClassName": a class in a Python file (a config's relative path is relative to its folder);
- "package.module:ClassName": a class in an importable module;
- "name": an entry point of group `paperdesk.strategies` of an installed package (the built-ins are such entries),
  or a name registered in this process (engine.strategy.registry.register).

Every way a kind fails to give a strategy class is a StrategyLoadError naming the file, the line and the exception.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import importlib.metadata
import importlib.util
import inspect
import json
import re
import sys
import traceback
from collections.abc import Callable, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any
from weakref import WeakKeyDictionary

from engine.strategy.base import Strategy, StrategyParams

ENTRY_POINT_GROUP = "paperdesk.strategies"
OTHER_SOURCES = "or give a file ('strategies/mine.py:MyStrategy') or a module ('mypkg.module:MyStrategy')"

_MODULE_PATH = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")
_ATTRIBUTE_PATH = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")

# resolved file -> (sha256 of the text it was run from, its module): the same file gives the same class
_FILES: dict[Path, tuple[str, ModuleType]] = {}
# the exact text a class was built from, for its fingerprint (a file may change after it was loaded)
_SOURCES: WeakKeyDictionary[type, bytes] = WeakKeyDictionary()


class StrategyLoadError(KeyError):
    """A kind that gives no usable strategy class. A KeyError, as an unknown kind always was; str() is the message."""

    def __str__(self) -> str:
        return str(self.args[0])


class UnknownStrategy(StrategyLoadError):
    """A name no installed package offers and nothing registered; known: the names there are."""

    def __init__(self, name: str, known: list[str]) -> None:
        super().__init__(f"unknown strategy {name!r}; known: {', '.join(known)}; {OTHER_SOURCES}")
        self.known = known


def is_file_kind(kind: str) -> bool:
    """Whether kind names a file ('x.py:Class', or a path with a folder in it) rather than a module or a name."""
    location = kind.rpartition(":")[0] if ":" in kind else kind
    return location.endswith(".py") or "/" in location or "\\" in location


def absolute_kind(kind: str, base_dir: Path | None) -> str:
    """kind with a file path made absolute against base_dir (the config's folder; None: the current directory)."""
    if not is_file_kind(kind):
        return kind
    location, colon, attribute = kind.rpartition(":") if ":" in kind else (kind, "", "")
    path = Path(location).expanduser()
    if not path.is_absolute():
        path = (base_dir or Path.cwd()) / path
    return f"{path.resolve()}{colon}{attribute}"


def load_strategy(kind: str, registered: Callable[[], Mapping[str, type[Strategy[Any]]]]) -> type[Strategy[Any]]:
    """The strategy class kind names; registered gives the names registered in this process (built-ins included)."""
    if is_file_kind(kind) or ":" in kind:
        location, _, attribute = kind.rpartition(":") if ":" in kind else (kind, "", "")
        if not _ATTRIBUTE_PATH.fullmatch(attribute):
            raise StrategyLoadError(f"strategy {kind!r}: name the class after a colon, e.g. "
                                    f"'{location or 'strategies/breakout.py'}:ClassName'")
        if is_file_kind(kind):
            return _from_file(absolute_kind(location, None), attribute)
        if not _MODULE_PATH.fullmatch(location):
            raise StrategyLoadError(f"strategy {kind!r}: {location!r} is neither a file path ending in .py nor a "
                                    "dotted module path (package.module)")
        return _from_module(location, attribute)
    return _from_name(kind, registered)


def entry_point_names() -> list[str]:
    """The names installed packages offer in group paperdesk.strategies."""
    return sorted({ep.name for ep in _entry_points()})


def _entry_points() -> importlib.metadata.EntryPoints:
    return _entry_points_on(tuple(sys.path))


@functools.lru_cache(maxsize=8)
def _entry_points_on(path: tuple[str, ...]) -> importlib.metadata.EntryPoints:
    # reading every installed package's metadata takes milliseconds and a config names its strategies several
    # times: read once per sys.path (a package installed into it meanwhile is seen by the next process)
    return importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)


def strategy_fingerprint(strategy: Strategy[Any]) -> str:
    """sha256 of the strategy class's source (its file for a file strategy, its module's otherwise) and its params
    as canonical JSON: a changed line or parameter gives another fingerprint."""
    params = json.dumps(strategy.params.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(strategy_source(type(strategy)) + b"\n" + params.encode()).hexdigest()


def strategy_source(cls: type) -> bytes:
    """The text cls was built from: its file as it was loaded, else its module's source (its name if it has none)."""
    source = _SOURCES.get(cls)
    if source is None:
        module = sys.modules.get(cls.__module__)
        try:
            source = inspect.getsource(module if module is not None else cls).encode()
        except (OSError, TypeError):  # defined where no source is kept (an interactive session, exec)
            source = f"{cls.__module__}:{cls.__qualname__}".encode()
        _SOURCES[cls] = source
    return source


# ---- the three sources ----------------------------------------------------------------------------------------

def _from_file(location: str, attribute: str) -> type[Strategy[Any]]:
    path = Path(location)
    try:
        source = path.read_bytes()
    except FileNotFoundError:
        raise StrategyLoadError(f"{path}: no such strategy file (a relative path is relative to the config "
                                "file's folder)") from None
    except OSError as exc:
        raise StrategyLoadError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    digest = hashlib.sha256(source).hexdigest()
    known = _FILES.get(path)
    if known is not None and known[0] == digest:
        module = known[1]
    else:
        module = _run_file(path, source)
        _FILES[path] = (digest, module)
    cls = _checked(_attribute(module, attribute, str(path)), attribute, str(path))
    if cls.__module__ == module.__name__:
        _SOURCES[cls] = source
    return cls


def _run_file(path: Path, source: bytes) -> ModuleType:
    """The file run as a module of its own, under a name no other file or package has."""
    try:
        code = compile(source, str(path), "exec", dont_inherit=True)
    except SyntaxError as exc:
        raise StrategyLoadError(f"{path}:{exc.lineno}: SyntaxError: {exc.msg}") from None
    except ValueError as exc:  # a null byte in the source
        raise StrategyLoadError(f"{path}: cannot compile it ({exc})") from None
    slug = re.sub(r"\W", "_", path.stem)
    name = f"paperdesk_strategy_file_{slug}_{hashlib.sha256(str(path).encode()).hexdigest()[:12]}"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None  # a .py location always gives a spec
    module = importlib.util.module_from_spec(spec)
    previous = sys.modules.get(name)
    # registered while it runs, as an import would: dataclasses and pydantic look their module up by name
    sys.modules[name] = module
    try:
        exec(code, module.__dict__)
    except Exception as exc:
        if previous is None:
            del sys.modules[name]
        else:
            sys.modules[name] = previous
        raise StrategyLoadError(f"{_where(exc) or path}: {_exception(exc)}") from None
    return module


def _from_module(module_name: str, attribute: str) -> type[Strategy[Any]]:
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and (module_name == exc.name or module_name.startswith(f"{exc.name}.")):
            raise StrategyLoadError(f"strategy module {module_name!r}: no module named {exc.name!r} (install the "
                                    "package that provides it, or put its folder on PYTHONPATH)") from None
        raise StrategyLoadError(f"{_where(exc) or module_name}: {_exception(exc)}") from None
    except SyntaxError as exc:
        raise StrategyLoadError(f"{exc.filename}:{exc.lineno}: SyntaxError: {exc.msg}") from None
    except Exception as exc:
        raise StrategyLoadError(f"{_where(exc) or module_name}: {_exception(exc)}") from None
    where = getattr(module, "__file__", None) or module_name
    return _checked(_attribute(module, attribute, where), attribute, where)


def _from_name(name: str, registered: Callable[[], Mapping[str, type[Strategy[Any]]]]) -> type[Strategy[Any]]:
    entries = {ep.value: ep for ep in _entry_points().select(name=name)}
    if len(entries) > 1:
        offers = ", ".join(f"{ep.value} ({_package(ep)})" for ep in entries.values())
        raise StrategyLoadError(f"strategy {name!r} is offered by more than one installed package: {offers}; name "
                                "the one you mean as 'package.module:ClassName'")
    known = registered()
    if entries:
        (entry,) = entries.values()
        try:
            loaded = entry.load()
        except Exception as exc:
            if name in known:  # stale package metadata naming a moved class: the registered one stands
                return known[name]
            where = _where(exc)
            raise StrategyLoadError(f"strategy {name!r} (entry point {entry.value} of {_package(entry)}): "
                                    f"{where + ': ' if where else ''}{_exception(exc)}") from None
        return _checked(loaded, entry.value, f"entry point {name!r} ({entry.value} of {_package(entry)})")
    if name in known:  # registered in this process, or a built-in when the package metadata predates its entry
        return known[name]
    raise UnknownStrategy(name, sorted(set(known) | set(entry_point_names())))


# ---- checks and messages ----------------------------------------------------------------------------------------

def _attribute(module: ModuleType, attribute: str, where: str) -> object:
    value: object = module
    for part in attribute.split("."):
        if not hasattr(value, part):
            found = sorted(n for n, v in vars(module).items()
                           if inspect.isclass(v) and issubclass(v, Strategy) and v.__module__ == module.__name__)
            hint = f"; strategies there: {', '.join(found)}" if found else "; it defines no Strategy subclass"
            raise StrategyLoadError(f"{where}: no class {attribute!r} in it{hint}")
        value = getattr(value, part)
    return value


def _checked(value: object, attribute: str, where: str) -> type[Strategy[Any]]:
    """value if it is a usable strategy class; else why not, at the line that defines it."""
    if not (inspect.isclass(value) and issubclass(value, Strategy)) or value is Strategy:
        what = f"class {attribute}" if inspect.isclass(value) else f"{attribute} (a {type(value).__name__})"
        raise StrategyLoadError(f"{_defined_at(value) or where}: {what} is not a strategy: it must subclass "
                                f"engine.strategy.base.Strategy (class {attribute.rpartition('.')[2]}"
                                "(Strategy[MyParams]))")
    params = value.Params
    if not (inspect.isclass(params) and issubclass(params, StrategyParams)):
        raise StrategyLoadError(f"{_defined_at(value) or where}: {attribute}.Params must be a subclass of "
                                "engine.strategy.base.StrategyParams (class MyParams(StrategyParams))")
    return value


def _defined_at(value: object) -> str:
    """'file:line' where value is defined, when its source can be found."""
    try:
        file = inspect.getsourcefile(value)  # type: ignore[arg-type]
        line = inspect.getsourcelines(value)[1]  # type: ignore[arg-type]
    except (OSError, TypeError):
        return ""
    return f"{file}:{line}" if file else ""


def _where(exc: BaseException) -> str:
    """'file:line' of the deepest frame of the user's code the exception passed through."""
    machinery = (str(Path(importlib.__file__).parent), __file__)  # importing and loading, not the user's code
    frames = [f for f in traceback.extract_tb(exc.__traceback__)
              if not f.filename.startswith(("<", *machinery))]
    if not frames:
        return ""
    folder = str(Path(frames[0].filename).parent)  # the file or module being loaded: its folder is the user's code
    mine = [f for f in frames if f.filename.startswith(folder)] or frames
    return f"{mine[-1].filename}:{mine[-1].lineno}"


def _exception(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _package(entry: importlib.metadata.EntryPoint) -> str:
    dist = entry.dist
    return f"package {dist.name}" if dist is not None else "an installed package"
