"""@record: dataclass-style plain data holders without importing dataclasses.

dataclasses pulls in inspect and friends; in the rig's L1 guest that is a
second of start-up per `onekvm` invocation. Fields are the class's
annotations in order; a class attribute is the default, Factory(f) a
per-instance default made by f().
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing is not imported at run time: start-up cost in the rig

if TYPE_CHECKING:
    from typing import Any, Callable, TypeVar

    T = TypeVar("T")


class Factory:
    def __init__(self, make: Callable[[], Any]) -> None:
        self.make = make


def record(cls: type[T]) -> type[T]:
    names = list(cls.__dict__.get("__annotations__", {}))
    defaults = {n: cls.__dict__[n] for n in names if n in cls.__dict__}
    for n, d in defaults.items():
        if isinstance(d, Factory):
            delattr(cls, n)

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        if len(args) > len(names):
            raise TypeError(f"{cls.__name__}() takes {len(names)} fields, got {len(args)}")
        for n, v in zip(names, args):
            setattr(self, n, v)
        for n in names[len(args) :]:
            if n in kwargs:
                setattr(self, n, kwargs.pop(n))
            elif n in defaults:
                d = defaults[n]
                setattr(self, n, d.make() if isinstance(d, Factory) else d)
            else:
                raise TypeError(f"{cls.__name__}() missing field {n!r}")
        if kwargs:
            raise TypeError(f"{cls.__name__}() got unexpected fields {sorted(kwargs)}")

    def __repr__(self: Any) -> str:
        return f"{cls.__name__}(" + ", ".join(f"{n}={getattr(self, n)!r}" for n in names) + ")"

    def __eq__(self: Any, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return all(getattr(self, n) == getattr(other, n) for n in names)

    cls.__init__ = __init__  # type: ignore[misc]
    cls.__repr__ = __repr__  # type: ignore[assignment]
    cls.__eq__ = __eq__  # type: ignore[assignment]
    cls.__hash__ = None  # type: ignore[assignment]
    return cls
