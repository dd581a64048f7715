"""Content digests (`algorithm:hex`), as the OCI image spec defines them.

Only sha256 and sha512 are registered. A `Digest` is validated when made, so code holding one
can use it in a path without further checks.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

from skiff.errors import InvalidArgument

_LENGTHS = {"sha256": 64, "sha512": 128}
_HEX = re.compile(r"^[a-f0-9]+$")


@dataclass(frozen=True, slots=True)
class Digest:
    algorithm: str
    hex: str

    @classmethod
    def parse(cls, text: str) -> Digest:
        algorithm, sep, hexpart = text.partition(":")
        if not sep:
            raise InvalidArgument(f"invalid digest {text!r}: expected algorithm:hex")
        want = _LENGTHS.get(algorithm)
        if want is None:
            raise InvalidArgument(f"invalid digest {text!r}: unsupported algorithm {algorithm!r}")
        if len(hexpart) != want or not _HEX.match(hexpart):
            raise InvalidArgument(
                f"invalid digest {text!r}: {algorithm} needs {want} lowercase hex characters"
            )
        return cls(algorithm, hexpart)

    @classmethod
    def of_bytes(cls, data: bytes, algorithm: str = "sha256") -> Digest:
        return cls(algorithm, hashlib.new(algorithm, data).hexdigest())

    def hasher(self) -> Any:
        """A new hashlib object of this digest's algorithm."""
        return hashlib.new(self.algorithm)

    def short(self, n: int = 12) -> str:
        return self.hex[:n]

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.hex}"


def new_hasher(algorithm: str = "sha256") -> Any:
    if algorithm not in _LENGTHS:
        raise InvalidArgument(f"unsupported digest algorithm {algorithm!r}")
    return hashlib.new(algorithm)
