"""The closed set of errors every layer raises.

Each layer adds context ("image sha256:ab…: layer 2: …") by raising a new error of the same
class `from` the old one, or by calling `.wrap()`. Only `api/` turns these into HTTP statuses
and only the CLIs turn them into exit codes.
"""

from __future__ import annotations


class SkiffError(Exception):
    """Base of the closed set. `message` is a sentence a user can act on."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def wrap(self, context: str) -> SkiffError:
        """Return an error of the same class with `context: ` prepended to the message."""
        err = type(self)(f"{context}: {self.message}")
        err.__cause__ = self
        return err

    def __str__(self) -> str:
        return self.message


class NotFound(SkiffError):
    """The named object does not exist."""


class AlreadyExists(SkiffError):
    """An object with that name or id exists already."""


class Conflict(SkiffError):
    """The object is in a state that forbids the operation (running, in use)."""


class InvalidArgument(SkiffError):
    """The request itself is malformed: a bad field, flag, name or value."""


class FailedPrecondition(SkiffError):
    """The system is not in a state that allows the operation (missing kernel feature, …)."""


class Unavailable(SkiffError):
    """A dependency (daemon, registry, kernel resource) cannot be reached right now."""


class NotImplementedYet(SkiffError):
    """The operation is understood but not supported by skiff (yet). Says so, never fakes it."""


class Internal(SkiffError):
    """A bug: an invariant was broken."""


__all__ = [
    "SkiffError",
    "NotFound",
    "AlreadyExists",
    "Conflict",
    "InvalidArgument",
    "FailedPrecondition",
    "Unavailable",
    "NotImplementedYet",
    "Internal",
]
