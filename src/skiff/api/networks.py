"""/networks: list, inspect, create, remove, connect, disconnect, prune (Docker's shapes)."""

from __future__ import annotations

from typing import Any

from skiff.api.http import Request, Response, Router, json_response, no_content
from skiff.errors import InvalidArgument, NotFound
from skiff.network.manager import PREDEFINED, Network


def _labels_match(labels: dict[str, str], wanted: list[str]) -> bool:
    for w in wanted:
        k, eq, v = w.partition("=")
        if k not in labels or (eq and labels[k] != v):
            return False
    return True


def register(router: Router, engine: Any) -> None:
    def mgr() -> Any:
        if engine.plumbing is None or engine.plumbing.networking is None:
            raise NotFound("networking is not enabled in this daemon")
        return engine.plumbing.networking.manager

    def names(cid: str) -> str:
        c = engine.containers.get(cid)
        return c.name if c is not None else ""

    def list_(req: Request) -> Response:
        f = req.filters()
        out = []
        for n in mgr().networks():
            if "name" in f and not any(x in n.name for x in f["name"]):
                continue
            if "id" in f and not any(n.id.startswith(x) for x in f["id"]):
                continue
            if "driver" in f and n.driver not in f["driver"]:
                continue
            if "label" in f and not _labels_match(n.labels, f["label"]):
                continue
            if "type" in f:
                kind = "builtin" if n.name in PREDEFINED else "custom"
                if kind not in f["type"]:
                    continue
            if "dangling" in f:
                dangling = not mgr().endpoints_on(n.id) and n.name not in PREDEFINED
                if (f["dangling"][0].lower() in ("true", "1")) != dangling:
                    continue
            out.append(mgr().inspect(n, names))
        return json_response(out)

    def inspect(req: Request) -> Response:
        n = mgr().get(req.params["id"])
        return json_response(mgr().inspect(n, names))

    def create(req: Request) -> Response:
        body = req.json()
        if not isinstance(body, dict):
            raise InvalidArgument("invalid JSON body: expected an object")
        name = body.get("Name") or ""
        if not name:
            raise InvalidArgument("network name is required")
        configs = ((body.get("IPAM") or {}).get("Config")) or []
        subnet = gateway = None
        for c in configs:
            if ":" in (c.get("Subnet") or ""):
                continue  # IPv6: not supported on skiff bridges
            subnet, gateway = c.get("Subnet") or None, c.get("Gateway") or None
            break
        n: Network = mgr().create(
            name,
            driver=body.get("Driver") or "bridge",
            subnet=subnet,
            gateway=gateway,
            internal=bool(body.get("Internal")),
            labels=body.get("Labels") or {},
            options=body.get("Options") or {},
        )
        engine.events.publish("network", "create", n.id, {"name": n.name, "type": n.driver})
        return json_response({"Id": n.id, "Warning": ""}, status=201)

    def remove(req: Request) -> Response:
        n = mgr().get(req.params["id"])
        mgr().remove(n.id)
        engine.events.publish("network", "destroy", n.id, {"name": n.name, "type": n.driver})
        return no_content()

    def connect(req: Request) -> Response:
        n = mgr().get(req.params["id"])
        body = req.json() or {}
        c = engine.get(body.get("Container") or "")
        engine.plumbing.connect(
            c.id,
            c.name,
            engine.container_dir(c.id),
            bool(c.state.get("Running")),
            n.name,
            body.get("EndpointConfig") or {},
        )
        engine.events.publish(
            "network", "connect", n.id, {"name": n.name, "type": n.driver, "container": c.id}
        )
        return Response(status=200, content_type="")

    def disconnect(req: Request) -> Response:
        n = mgr().get(req.params["id"])
        body = req.json() or {}
        c = engine.get(body.get("Container") or "")
        engine.plumbing.disconnect(
            c.id, engine.container_dir(c.id), bool(c.state.get("Running")), n.name, c.host_config
        )
        engine.events.publish(
            "network", "disconnect", n.id, {"name": n.name, "type": n.driver, "container": c.id}
        )
        return Response(status=200, content_type="")

    def prune(req: Request) -> Response:
        f = req.filters()
        removed = mgr().prune(
            keep=lambda n: "label" in f and not _labels_match(n.labels, f["label"])
        )
        return json_response({"NetworksDeleted": removed})

    r = router.add
    r("GET", "/networks", list_)
    r("GET", "/networks/{id}", inspect)
    r("POST", "/networks/create", create)
    r("DELETE", "/networks/{id}", remove)
    r("POST", "/networks/{id}/connect", connect)
    r("POST", "/networks/{id}/disconnect", disconnect)
    r("POST", "/networks/prune", prune)
