"""/volumes: list, create, inspect, remove, prune (Docker's shapes)."""

from __future__ import annotations

from typing import Any

from skiff.api.http import Request, Response, Router, json_response, no_content
from skiff.errors import InvalidArgument, NotFound


def _labels_match(labels: dict[str, str], wanted: list[str]) -> bool:
    for w in wanted:
        k, eq, v = w.partition("=")
        if k not in labels or (eq and labels[k] != v):
            return False
    return True


def register(router: Router, engine: Any) -> None:
    def vols() -> Any:
        if engine.plumbing is None or engine.plumbing.volumes is None:
            raise NotFound("volumes are not enabled in this daemon")
        return engine.plumbing.volumes

    def list_(req: Request) -> Response:
        f = req.filters()
        out = []
        for v in vols().volumes():
            if "name" in f and not any(x in v.name for x in f["name"]):
                continue
            if "driver" in f and "local" not in f["driver"]:
                continue
            if "label" in f and not _labels_match(v.labels, f["label"]):
                continue
            if "dangling" in f and (f["dangling"][0].lower() in ("true", "1")) != (not v.users):
                continue
            out.append(vols().inspect(v))
        return json_response({"Volumes": out, "Warnings": []})

    def create(req: Request) -> Response:
        body = req.json()
        if not isinstance(body, dict):
            raise InvalidArgument("invalid JSON body: expected an object")
        v = vols().create(
            body.get("Name") or None,
            driver=body.get("Driver") or "local",
            labels=body.get("Labels") or {},
            options=body.get("DriverOpts") or {},
        )
        engine.events.publish("volume", "create", v.name, {"driver": "local"})
        return json_response(vols().inspect(v), status=201)

    def inspect(req: Request) -> Response:
        return json_response(vols().inspect(vols().get(req.params["name"])))

    def remove(req: Request) -> Response:
        name = req.params["name"]
        vols().remove(name, force=req.flag("force"))
        engine.events.publish("volume", "destroy", name, {"driver": "local"})
        return no_content()

    def prune(req: Request) -> Response:
        f = req.filters()
        all_volumes = any(x.lower() in ("true", "1") for x in f.get("all", []))
        deleted, space = vols().prune(
            all_volumes=all_volumes,
            keep=lambda v: "label" in f and not _labels_match(v.labels, f["label"]),
        )
        return json_response({"VolumesDeleted": deleted, "SpaceReclaimed": space})

    r = router.add
    r("GET", "/volumes", list_)
    r("POST", "/volumes/create", create)
    r("POST", "/volumes/prune", prune)
    r("GET", "/volumes/{name}", inspect)
    r("DELETE", "/volumes/{name}", remove)
