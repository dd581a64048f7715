"""The wire vocabulary of the OCI distribution spec v1.1, shared by the server and the client.

No sockets here: error codes and their HTTP statuses, repository-name and tag grammars,
`Range`/`Content-Range` parsing, the `Link` header, and the `WWW-Authenticate` challenge format.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from urllib.parse import quote

from skiff.types import mediatypes as mt

API_VERSION_HEADER = ("Docker-Distribution-API-Version", "registry/2.0")

OCI_ARTIFACT_MANIFEST = "application/vnd.oci.artifact.manifest.v1+json"

#: Every manifest media type a client accepts when resolving a reference, best first.
MANIFEST_ACCEPT = (
    mt.OCI_INDEX,
    mt.DOCKER_MANIFEST_LIST,
    mt.OCI_MANIFEST,
    mt.DOCKER_MANIFEST,
    OCI_ARTIFACT_MANIFEST,
)

#: The spec's error codes and the status each one is returned with by default.
ERROR_STATUS: dict[str, int] = {
    "BLOB_UNKNOWN": 404,
    "BLOB_UPLOAD_INVALID": 400,
    "BLOB_UPLOAD_UNKNOWN": 404,
    "DIGEST_INVALID": 400,
    "MANIFEST_BLOB_UNKNOWN": 400,
    "MANIFEST_INVALID": 400,
    "MANIFEST_UNKNOWN": 404,
    "NAME_INVALID": 400,
    "NAME_UNKNOWN": 404,
    "SIZE_INVALID": 400,
    "UNAUTHORIZED": 401,
    "DENIED": 403,
    "UNSUPPORTED": 405,
    "TOOMANYREQUESTS": 429,
}


class RegistryError(Exception):
    """One error of the spec's error body; raised by server code, rendered at the HTTP edge.

    The client raises it too, when a registry answered with an error body, so callers can
    look at `code` before it is translated into the closed `skiff.errors` set.
    """

    def __init__(
        self,
        code: str,
        message: str,
        detail: object = None,
        *,
        status: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.detail = detail
        self.status = status if status is not None else ERROR_STATUS.get(code, 400)
        self.headers = headers or {}

    def body(self) -> bytes:
        entry: dict[str, object] = {"code": self.code, "message": self.message}
        if self.detail is not None:
            entry["detail"] = self.detail
        return json.dumps({"errors": [entry]}).encode()


def parse_error_body(body: bytes) -> list[dict[str, object]]:
    """The `errors` list of a registry error body ([] when the body is not one)."""
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return []
    errs = doc.get("errors") if isinstance(doc, dict) else None
    return [e for e in errs if isinstance(e, dict)] if isinstance(errs, list) else []


_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
NAME_RE = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")
TAG_RE = re.compile(r"^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$")
MAX_NAME_LENGTH = 255


def valid_name(name: str) -> bool:
    return len(name) <= MAX_NAME_LENGTH and NAME_RE.match(name) is not None


def valid_tag(tag: str) -> bool:
    return TAG_RE.match(tag) is not None


def parse_byte_range(header: str, total: int) -> tuple[int, int] | None:
    """`Range: bytes=a-b|a-|-n` against a blob of `total` bytes → inclusive (start, end).

    Returns None when the header is not a single satisfiable byte range (the caller answers
    416 for a syntactically valid but unsatisfiable range; multi-ranges are ignored as RFC 9110
    allows).
    """
    m = re.fullmatch(r"\s*bytes=(\d*)-(\d*)\s*", header)
    if not m or (not m.group(1) and not m.group(2)):
        return None
    if not m.group(1):
        suffix = int(m.group(2))
        if suffix == 0:
            return None
        return max(0, total - suffix), total - 1
    start = int(m.group(1))
    end = int(m.group(2)) if m.group(2) else total - 1
    end = min(end, total - 1)
    if start > end or start >= total:
        return None
    return start, end


def parse_content_range(header: str) -> tuple[int, int]:
    """An upload chunk's `Content-Range: <start>-<end>` (also `bytes a-b/*`) → (start, end)."""
    m = re.fullmatch(r"\s*(?:bytes[ =])?(\d+)-(\d+)(?:/(?:\d+|\*))?\s*", header)
    if not m:
        raise ValueError(f"malformed Content-Range {header!r}")
    start, end = int(m.group(1)), int(m.group(2))
    if end < start:
        raise ValueError(f"Content-Range {header!r} ends before it starts")
    return start, end


def upload_range(offset: int) -> str:
    """The `Range` header of an upload holding `offset` bytes (distribution sends 0-0 when empty)."""
    return f"0-{max(offset - 1, 0)}"


def next_link(path: str, n: int, last: str) -> str:
    return f'<{path}?n={n}&last={quote(last, safe="")}>; rel="next"'


def paginate(items: list[str], n: int | None, last: str | None) -> tuple[list[str], bool]:
    """Lexically sorted `items` after `last`, at most `n` of them; and whether more follow."""
    ordered = sorted(items)
    if last:
        ordered = [i for i in ordered if i > last]
    if n is None:
        return ordered, False
    return ordered[:n], len(ordered) > n


@dataclass(frozen=True)
class Challenge:
    """One `WWW-Authenticate` challenge: scheme ('basic'/'bearer') and its parameters."""

    scheme: str
    params: dict[str, str] = field(default_factory=dict)


_PARAM = re.compile(r'\s*([A-Za-z0-9_-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))\s*,?')


def parse_challenges(header: str) -> list[Challenge]:
    """Parse `Bearer realm="…",service="…",scope="…"` (or several, comma-separated)."""
    out: list[Challenge] = []
    pos = 0
    text = header.strip()
    while pos < len(text):
        m = re.match(r"\s*([A-Za-z][A-Za-z0-9_-]*)\s*", text[pos:])
        if not m:
            break
        scheme = m.group(1).lower()
        pos += m.end()
        params: dict[str, str] = {}
        while pos < len(text):
            pm = _PARAM.match(text, pos)
            if not pm:
                break
            value = pm.group(2) if pm.group(2) is not None else pm.group(3)
            params[pm.group(1).lower()] = re.sub(r"\\(.)", r"\1", value)
            pos = pm.end()
        out.append(Challenge(scheme, params))
        if pos < len(text) and text[pos] == ",":
            pos += 1
    return out


def format_challenge(scheme: str, params: dict[str, str]) -> str:
    inner = ",".join(f'{k}="{v}"' for k, v in params.items())
    return f"{scheme} {inner}" if inner else scheme
