"""Recording drafts for ``on_message`` hooks.

A draft stands for the entry's data the way an Immer draft does in RTK Query: the hook reads it
like plain dicts and lists and mutates it in place. Each mutation is applied to the binding's Python
replica of the data and recorded as an RFC 6902 operation; the engine applies those operations to
its own data directly, so a message costs time in proportion to the change, not to the document.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator, MutableMapping, MutableSequence
from typing import Any, Callable, List, Optional, Tuple, Union, overload

Op = Tuple[str, str, Any]


def _token(key: Union[str, int]) -> str:
    s = str(key)
    if "~" in s or "/" in s:
        s = s.replace("~", "~0").replace("/", "~1")
    return s


_SCALARS = (str, int, float, bool, type(None))


def _clone(v: Any) -> Any:
    """A private copy of a JSON container, so a value stored in the draft is never aliased."""
    t = type(v)
    if t in _SCALARS:
        return v
    if t is dict:
        return {k: (x if type(x) in _SCALARS else _clone(x)) for k, x in v.items()}
    if isinstance(v, _Draft):
        v = v._target
    if isinstance(v, dict):
        return {k: (x if type(x) in _SCALARS else _clone(x)) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [x if type(x) in _SCALARS else _clone(x) for x in v]
    return v


def _freeze_last(ops: List[Op]) -> None:
    """Called before each edit. A recorded operation carries the replica's own object as its value,
    which stays right until a later edit changes it; so before the next edit is applied, the
    previous value is copied if it is a container. A hook making one edit per message copies
    nothing."""
    if ops:
        op, path, value = ops[-1]
        if type(value) not in _SCALARS:
            ops[-1] = (op, path, _clone(value))


class _Draft:
    __slots__ = ("_target", "_parent", "_key", "_ops")

    def __init__(self, target: Any, parent: Optional["_Draft"], key: Union[str, int, None], ops: List[Op]) -> None:
        self._target = target
        self._parent = parent
        self._key = key
        self._ops = ops

    @property
    def __livecache_value__(self) -> Any:
        return self._target

    def _path(self) -> str:
        parent = self._parent
        if parent is None:
            return ""
        key = self._key
        if isinstance(parent, DraftList):
            items = parent._target
            # The element may have moved since this draft was made (an insert before it).
            if not (isinstance(key, int) and key < len(items) and items[key] is self._target):
                for i, item in enumerate(items):
                    if item is self._target:
                        key = self._key = i
                        break
                else:
                    raise RuntimeError("this draft's value is no longer part of the data")
        assert key is not None
        return parent._path() + "/" + _token(key)

    def _wrap(self, value: Any, key: Union[str, int]) -> Any:
        if isinstance(value, dict):
            return DraftDict(value, self, key, self._ops)
        if isinstance(value, list):
            return DraftList(value, self, key, self._ops)
        return value

    def __eq__(self, other: object) -> bool:
        if isinstance(other, _Draft):
            other = other._target
        return bool(self._target == other)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._target!r})"


class DraftDict(_Draft, MutableMapping[str, Any]):
    """A draft of a JSON object."""

    __slots__ = ()

    def __getitem__(self, key: str) -> Any:
        return self._wrap(self._target[key], key)

    def get(self, key: str, default: Any = None) -> Any:
        target = self._target
        if key in target:
            return self._wrap(target[key], key)
        return default

    def __setitem__(self, key: str, value: Any) -> None:
        if not isinstance(key, str):
            raise TypeError(f"JSON object keys are str, not {type(key).__name__}")
        target = self._target
        op = "replace" if key in target else "add"
        value = _clone(value)
        path = self._path() + "/" + _token(key)
        _freeze_last(self._ops)
        target[key] = value
        self._ops.append((op, path, value))

    def __delitem__(self, key: str) -> None:
        path = self._path() + "/" + _token(key)
        _freeze_last(self._ops)
        del self._target[key]
        self._ops.append(("remove", path, None))

    def __iter__(self) -> Iterator[str]:
        return iter(self._target)

    def __len__(self) -> int:
        return len(self._target)

    def __contains__(self, key: object) -> bool:
        return key in self._target


class DraftList(_Draft, MutableSequence[Any]):
    """A draft of a JSON array."""

    __slots__ = ()

    def _index(self, i: int) -> int:
        n = len(self._target)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError("list index out of range")
        return i

    @overload
    def __getitem__(self, i: int) -> Any: ...
    @overload
    def __getitem__(self, i: slice) -> List[Any]: ...
    def __getitem__(self, i: Union[int, slice]) -> Any:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self._target)))]
        i = self._index(i)
        return self._wrap(self._target[i], i)

    @overload
    def __setitem__(self, i: int, value: Any) -> None: ...
    @overload
    def __setitem__(self, i: slice, value: Any) -> None: ...
    def __setitem__(self, i: Union[int, slice], value: Any) -> None:
        if isinstance(i, slice):
            new = list(self._target)
            new[i] = [_clone(v) for v in value]
            self._replace_all(new)
            return
        i = self._index(i)
        value = _clone(value)
        path = self._path() + "/" + str(i)
        _freeze_last(self._ops)
        self._target[i] = value
        self._ops.append(("replace", path, value))

    @overload
    def __delitem__(self, i: int) -> None: ...
    @overload
    def __delitem__(self, i: slice) -> None: ...
    def __delitem__(self, i: Union[int, slice]) -> None:
        if isinstance(i, slice):
            for j in sorted(range(*i.indices(len(self._target))), reverse=True):
                del self[j]
            return
        i = self._index(i)
        path = self._path() + "/" + str(i)
        _freeze_last(self._ops)
        del self._target[i]
        self._ops.append(("remove", path, None))

    def __len__(self) -> int:
        return len(self._target)

    def __iter__(self) -> Iterator[Any]:
        for i, v in enumerate(self._target):
            yield self._wrap(v, i)

    def __contains__(self, value: object) -> bool:
        if isinstance(value, _Draft):
            value = value._target
        return value in self._target

    def insert(self, index: int, value: Any) -> None:
        n = len(self._target)
        if index < 0:
            index = max(0, index + n)
        index = min(index, n)
        value = _clone(value)
        path = self._path() + "/" + (str(index) if index < n else "-")
        _freeze_last(self._ops)
        self._target.insert(index, value)
        self._ops.append(("add", path, value))

    def append(self, value: Any) -> None:
        value = _clone(value)
        path = self._path() + "/-"
        _freeze_last(self._ops)
        self._target.append(value)
        self._ops.append(("add", path, value))

    def clear(self) -> None:
        self._replace_all([])

    def sort(self, *, key: Optional[Callable[[Any], Any]] = None, reverse: bool = False) -> None:
        self._replace_all(sorted(self._target, key=key, reverse=reverse))

    def _replace_all(self, new: List[Any]) -> None:
        path = self._path()
        _freeze_last(self._ops)
        self._target[:] = new
        self._ops.append(("replace", path, _clone(new)))


def run_on_message(fn: Callable[[Any, Any, Any], Any], data: Any, message: Any, arg: Any) -> Tuple[int, Any]:
    """Runs an ``on_message`` hook on a recording draft of ``data`` (the replica).

    Returns ``(0, ops)`` when the hook mutated the draft (or did nothing), ``(1, value)`` when it
    returned a new value.
    """
    ops: List[Op] = []
    draft: Any
    t = type(data)
    if t is list:
        draft = DraftList(data, None, None, ops)
    elif t is dict:
        draft = DraftDict(data, None, None, ops)
    else:
        draft = data
    result = fn(draft, message, arg)
    if result is None or result is draft:
        return (0, ops)
    if inspect.isawaitable(result):
        if inspect.iscoroutine(result):
            result.close()
        raise TypeError("on_message must be a plain function: it runs once per message, in order")
    if isinstance(result, _Draft):
        result = result._target
    return (1, result)


def run_on_messages(fn: Callable[[Any, Any, Any], Any], data: Any, messages: List[Any], arg: Any) -> List[Tuple[int, Any]]:
    """Runs an ``on_message`` hook over the messages of one burst, in order, each on a recording
    draft of the replica as the messages before it left it (one call from the engine per burst).

    Returns one ``(kind, payload)`` per message handled: ``(0, ops)`` mutated (or did nothing),
    ``(1, value)`` returned new data, ``(2, "Type: text")`` raised. It stops after the first
    ``1`` or ``2``: the engine offers the rest again, on data it computed itself.
    """
    out: List[Tuple[int, Any]] = []
    for message in messages:
        try:
            kind, payload = run_on_message(fn, data, message, arg)
        except Exception as exc:  # a hook failure is that message's `error` event (SPEC §6)
            out.append((2, f"{type(exc).__name__}: {exc}"))
            break
        out.append((kind, payload))
        if kind == 1:
            break
    return out
