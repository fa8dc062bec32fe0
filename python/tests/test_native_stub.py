"""fencelock/_native.pyi against the built module: the same names, methods and parameters,
and attribute types observed at runtime that agree with the annotations."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path
from typing import Any, Dict, List, Set

import pytest

import fencelock
from fencelock import _native

STUB = ast.parse((Path(fencelock.__file__).parent / "_native.pyi").read_text())
CLASSES: Dict[str, ast.ClassDef] = {node.name: node for node in STUB.body if isinstance(node, ast.ClassDef)}
CONSTANTS = {
    node.target.id
    for node in STUB.body
    if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
}
FUNCTIONS = {node.name for node in STUB.body if isinstance(node, ast.FunctionDef)}
# Private aliases (`_Event = Union[...]`) exist only for the type checker.
ALIASES = {
    target.id
    for node in STUB.body
    if isinstance(node, ast.Assign)
    for target in node.targets
    if isinstance(target, ast.Name)
}


def test_module_names_match_the_stub() -> None:
    runtime = {name for name in dir(_native) if not name.startswith("__") or name == "__version__"}
    runtime.discard("__version__")
    stubbed = set(CLASSES) | CONSTANTS | FUNCTIONS
    stubbed.discard("__version__")
    assert all(alias.startswith("_") for alias in ALIASES)
    assert runtime - stubbed == set(), "in the module but not in the stub"
    assert stubbed - runtime == set(), "in the stub but not in the module"
    assert isinstance(_native.__version__, str)


def _stub_members(name: str) -> Set[str]:
    """Public members a stub class declares, with those of its stub bases."""
    node = CLASSES[name]
    members: Set[str] = set()
    for item in node.body:
        if isinstance(item, ast.FunctionDef):
            members.add(item.name)
        elif isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
            members.add(item.target.id)
    for base in node.bases:
        if isinstance(base, ast.Name) and base.id in CLASSES:
            members |= _stub_members(base.id)
    return {member for member in members if not member.startswith("_")}


def _runtime_members(cls: type) -> Set[str]:
    if issubclass(cls, BaseException):
        inherited = set(dir(ConnectionError if issubclass(cls, ConnectionError) else Exception))
        names = set(dir(cls)) - inherited
        names |= set(vars(cls()))  # instance attributes set by __init__ (message)
    else:
        names = set(dir(cls)) - set(dir(object))
    return {name for name in names if not name.startswith("_")}


@pytest.mark.parametrize("name", sorted(CLASSES))
def test_class_members_match_the_stub(name: str) -> None:
    cls = getattr(_native, name)
    assert isinstance(cls, type)
    assert _runtime_members(cls) == _stub_members(name)
    for item in CLASSES[name].body:
        if isinstance(item, ast.FunctionDef) and item.name.startswith("__"):
            assert item.name in dir(cls), f"{name}.{item.name}"


@pytest.mark.parametrize("name", sorted(name for name in CLASSES if name.startswith("Native")))
def test_method_parameters_match_the_stub(name: str) -> None:
    cls = getattr(_native, name)
    for item in CLASSES[name].body:
        if not isinstance(item, ast.FunctionDef):
            continue
        stubbed = [arg.arg for arg in item.args.posonlyargs + item.args.args + item.args.kwonlyargs]
        stubbed = [arg for arg in stubbed if arg != "self"]
        target = cls if item.name == "__init__" else getattr(cls, item.name)
        try:
            signature = inspect.signature(target)
        except (TypeError, ValueError):
            continue  # slot wrappers (__len__) carry no signature
        runtime = [param for param in signature.parameters if param != "self"]
        assert runtime == stubbed, f"{name}.{item.name}"


# -- runtime values against annotations -------------------------------------------------------


def _annotations(name: str) -> Dict[str, ast.expr]:
    """Property name -> return annotation, for a record class."""
    found: Dict[str, ast.expr] = {}
    for item in CLASSES[name].body:
        if isinstance(item, ast.FunctionDef) and item.returns is not None:
            if any(isinstance(d, ast.Name) and d.id == "property" for d in item.decorator_list):
                found[item.name] = item.returns
    return found


def _agrees(value: Any, annotation: ast.expr) -> bool:
    if isinstance(annotation, ast.Constant) and annotation.value is None:
        return value is None
    if isinstance(annotation, ast.Name):
        builtin = {"int": int, "str": str, "bool": bool, "bytes": bytes}.get(annotation.id)
        if builtin is not None:
            return isinstance(value, builtin) and (builtin is bool or not isinstance(value, bool))
        if annotation.id in CLASSES:
            return isinstance(value, getattr(_native, annotation.id))
        if annotation.id in ALIASES:
            alias = next(
                node.value for node in STUB.body
                if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == annotation.id for t in node.targets)
            )
            return _agrees(value, alias)
        raise AssertionError(f"annotation {annotation.id} not understood by this test")
    if isinstance(annotation, ast.Subscript) and isinstance(annotation.value, ast.Name):
        inner = annotation.slice
        if annotation.value.id == "Optional":
            return value is None or _agrees(value, inner)
        if annotation.value.id == "Union":
            assert isinstance(inner, ast.Tuple)
            return any(_agrees(value, option) for option in inner.elts)
        if annotation.value.id == "List":
            return isinstance(value, list) and all(_agrees(item, inner) for item in value)
    raise AssertionError(f"annotation {ast.dump(annotation)} not understood by this test")


def _check_record(record: Any, seen: Set[str]) -> None:
    name = type(record).__name__
    fields = _annotations(name)
    assert fields, f"{name} has no annotated properties in the stub"
    for field, annotation in fields.items():
        value = getattr(record, field)
        assert _agrees(value, annotation), f"{name}.{field} = {value!r} disagrees with {ast.unparse(annotation)}"
    assert repr(record).startswith(f"{name}(")
    seen.add(name)


def _records() -> List[Any]:
    """Produces at least one record of every kind, with both None and str owners."""
    engine = _native.NativeEngine({"max_ttl_ms": 1000})
    found: List[Any] = [engine.acquire(0, "a", 10, client=1)]
    found.append(engine.acquire(0, "a", 10, wait_ms=100, client=2))
    for lock in engine.query(1):
        found.extend([lock, *lock.holders, *lock.waiters])
    engine.handle_timeout(10)  # expired (owner None), then the waiter is granted
    engine.acquire(10, "b", 50, owner="w")
    engine.acquire(11, "b", 50, steal=True)  # stolen (owner "w")
    engine.acquire(12, "c", 100)
    engine.acquire(12, "c", 100, wait_ms=5, client=3)
    engine.acquire(20, "d", 5, owner="x")
    engine.handle_timeout(30)  # wait timed out; expired (owner "x")
    while (event := engine.poll_event()) is not None:
        found.append(event)
    fence = _native.NativeFence()
    found.append(fence.check("r", 3))
    server = _native.NativeServer.recover({"ceiling": b"7\n", "snapshot.json": b"{broken"})
    recovery = server.recovery()
    assert recovery is not None
    found.append(recovery)
    found.extend(recovery.actions)
    conn = server.connect(0)
    server.receive(conn, b"PING\r\n", 0)
    server.shutdown(1)
    found.extend(server.drain())
    return found


def test_records_agree_with_their_annotations() -> None:
    seen: Set[str] = set()
    records = _records()
    for record in records:
        _check_record(record, seen)
    owners = {type(owner) for record in records if type(record).__name__ == "ExpiredEvent" for owner in [record.owner]}
    assert owners == {type(None), str}, "the expired event's owner is Optional[str]"
    record_classes = {name for name in CLASSES if _annotations(name) and not name.startswith("Native")}
    assert seen == record_classes, f"not exercised: {record_classes - seen}"
