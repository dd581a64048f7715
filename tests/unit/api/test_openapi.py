"""src/skiff/api/openapi.yaml lists exactly the routes skiffd serves: Docker's v1.47 routes plus
skiff's own extensions under /skiff/."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

from skiff.api.server import build_router

OPENAPI = Path(__file__).resolve().parents[3] / "src" / "skiff" / "api" / "openapi.yaml"


def _paths(text: str, path_indent: int) -> set[tuple[str, str]]:
    """(METHOD, path) pairs from an OpenAPI document's `paths:` block (indentation-based)."""
    out = set()
    current = None
    pad = " " * path_indent
    for line in text.splitlines():
        m = re.match(rf"^{pad}(/\S*):\s*$", line)
        if m:
            current = m.group(1)
            continue
        m = re.match(rf"^{pad}  (get|post|put|delete|head):\s*$", line)
        if m and current:
            out.add((m.group(1).upper(), current))
        elif line and not line.startswith(pad + " ") and not line.startswith(pad + "/"):
            current = None
    return out


def served_routes() -> set[tuple[str, str]]:
    """The route table skiffd serves (registration needs no live engine, only its attributes)."""
    stub_engine = SimpleNamespace(images=None, plumbing=None)
    return set(build_router(stub_engine, None, {}).table())  # type: ignore[arg-type]


def test_document_matches_route_table() -> None:
    documented = _paths(OPENAPI.read_text(), 2)
    assert documented == served_routes()


def test_every_route_is_in_docker_v147(reference_dir: Path) -> None:
    spec = _paths((reference_dir / "docker-engine-api-v1.47.yaml").read_text(), 2)
    docker_routes = {(m, p) for m, p in served_routes() if not p.startswith("/skiff/")}
    assert docker_routes - spec == set()
