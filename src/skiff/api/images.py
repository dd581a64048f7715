"""/images/* and /commit: the image store behind Docker's image endpoints."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from typing import Any

from skiff.api.http import Request, Response, Router, json_response
from skiff.engine.containers import Engine
from skiff.engine.events import EventBus
from skiff.errors import InvalidArgument, NotImplementedYet, SkiffError

IMAGE_FILTERS = {"dangling", "label", "reference", "before", "since", "until"}


def _summary(rec: Any) -> dict[str, Any]:
    cfg = rec.config.get("config") or rec.config.get("Config") or {}
    created = rec.created
    if isinstance(created, str):
        from skiff.engine.logs import parse_time

        try:
            created = int(parse_time(created))
        except ValueError:
            created = 0
    return {
        "Id": rec.id,
        "ParentId": rec.parent,
        "RepoTags": list(rec.repo_tags),
        "RepoDigests": list(rec.repo_digests),
        "Created": int(created or 0),
        "Size": int(rec.size or 0),
        "SharedSize": -1,
        "VirtualSize": int(rec.size or 0),
        "Labels": cfg.get("Labels") or {},
        "Containers": -1,
    }


def _summary_created(created: str) -> float:
    from skiff.engine.logs import parse_time

    try:
        return parse_time(created)
    except ValueError:
        return 0.0


def _until(value: str) -> float:
    """A prune `until` value: Unix seconds, an RFC 3339 time, or a Go duration before now."""
    import time

    from skiff.engine.logs import parse_since
    from skiff.images.changes import parse_go_duration

    try:
        return parse_since(value) or 0.0
    except ValueError:
        pass
    try:
        return time.time() - parse_go_duration(value, f"until={value}") / 1e9
    except InvalidArgument:
        raise InvalidArgument(f"invalid filter 'until={value}'") from None


def _match_reference(pattern: str, tags: list[str]) -> bool:
    import fnmatch

    for tag in tags:
        repo = tag.rsplit(":", 1)[0] if ":" in tag.rsplit("/", 1)[-1] else tag
        if fnmatch.fnmatch(tag, pattern) or fnmatch.fnmatch(repo, pattern):
            return True
        for prefix in ("docker.io/library/", "docker.io/"):
            if tag.startswith(prefix) and (
                fnmatch.fnmatch(tag[len(prefix) :], pattern)
                or fnmatch.fnmatch(repo[len(prefix) :], pattern)
            ):
                return True
    return False


def _registry_auth(req: Request) -> Any:
    from skiff.distribution.credentials import decode_registry_auth

    header = req.headers.get("X-Registry-Auth") or ""
    return decode_registry_auth(header) if header else None


def register(router: Router, engine: Engine, events: EventBus) -> None:
    def store() -> Any:
        if engine.images is None:
            raise NotImplementedYet("the image store is not available in this skiffd")
        return engine.images

    def list_(req: Request) -> Response:
        filters = req.filters()
        for key in filters:
            if key not in IMAGE_FILTERS:
                raise InvalidArgument(f"invalid filter '{key}'")
        images = [_summary(r) for r in store().list()]
        # As dockerd: an untagged image another image builds on (a build step's image) is an
        # intermediate image, listed only with all=1 and never dangling.
        parents = store().parent_ids()
        intermediate = {
            i["Id"]
            for i in images
            if i["Id"] in parents and not i["RepoTags"] and not i["RepoDigests"]
        }
        if "dangling" in filters:
            want = filters["dangling"][0].lower() in ("true", "1")
            if want:
                images = [i for i in images if not i["RepoTags"] and i["Id"] not in parents]
            else:
                images = [i for i in images if i["RepoTags"] or i["RepoDigests"]]
        elif not req.flag("all"):
            images = [i for i in images if i["Id"] not in intermediate]
        if "label" in filters:

            def ok(labels: dict[str, str]) -> bool:
                for w in filters["label"]:
                    k, sep, v = w.partition("=")
                    if k not in labels or (sep and labels[k] != v):
                        return False
                return True

            images = [i for i in images if ok(i["Labels"])]
        if "reference" in filters:
            images = [
                i
                for i in images
                if any(_match_reference(p, i["RepoTags"]) for p in filters["reference"])
            ]
        for ref in filters.get("before", []):
            pivot = _summary(store().resolve(ref))["Created"]
            images = [i for i in images if i["Created"] < pivot]
        for ref in filters.get("since", []):
            pivot = _summary(store().resolve(ref))["Created"]
            images = [i for i in images if i["Created"] > pivot]
        in_use = engine.in_use_images()
        for i in images:
            i["Containers"] = sum(1 for c in engine.all() if c.image_id == i["Id"]) if in_use else 0
        images.sort(key=lambda i: i["Created"], reverse=True)
        return json_response(images)

    def inspect(req: Request) -> Response:
        return json_response(store().inspect(req.params["name"]))

    def history(req: Request) -> Response:
        return json_response(store().history(req.params["name"]))

    def tag(req: Request) -> Response:
        repo = req.arg("repo")
        if not repo:
            raise InvalidArgument("repository name must have at least one component")
        new_ref = repo + (":" + req.arg("tag") if req.arg("tag") else "")
        store().tag(req.params["name"], new_ref)
        events.publish("image", "tag", store().resolve(new_ref).id, {"name": new_ref})
        return Response(201, content_type="")

    def remove(req: Request) -> Response:
        name = req.params["name"]
        rec = store().resolve(name)
        users = [c for c in engine.all() if c.image_id == rec.id]

        def in_use(image_id: str) -> bool:
            return any(c.image_id == image_id for c in engine.all())

        if (
            users
            and not req.flag("force")
            and (name.startswith("sha256:") or rec.id.startswith(name) or len(rec.repo_tags) <= 1)
        ):
            running = [c for c in users if c.state["Running"]]
            from skiff.errors import Conflict

            c = (running or users)[0]
            what = "running" if running else "stopped"
            raise Conflict(
                f"conflict: unable to delete {name} (must be forced) - image is being used by {what} container {c.id[:12]}"
                if not running
                else f"conflict: unable to delete {name} (cannot be forced) - image is being used by running container {c.id[:12]}"
            )
        result = store().remove(name, force=req.flag("force"), in_use=in_use)
        for item in result:
            for action, value in item.items():
                events.publish("image", action.lower(), value, {"name": name})
        return json_response(result)

    def prune(req: Request) -> Response:
        filters = req.filters()
        dangling = (filters.get("dangling") or ["true"])[0].lower() in ("true", "1")
        in_use = engine.in_use_images()
        for key in filters:
            if key not in ("dangling", "label", "label!", "until"):
                raise InvalidArgument(f"invalid filter '{key}'")
        cutoffs = [_until(v) for v in filters.get("until", [])]

        def has_label(labels: dict[str, str], want: str) -> bool:
            k, sep, v = want.partition("=")
            return k in labels and (not sep or labels[k] == v)

        def matches(image_config: dict[str, Any]) -> bool:
            labels = (image_config.get("config") or {}).get("Labels") or {}
            if cutoffs:
                created = _summary_created(str(image_config.get("created") or ""))
                if any(created >= c for c in cutoffs):
                    return False
            return all(has_label(labels, w) for w in filters.get("label", [])) and not any(
                has_label(labels, w) for w in filters.get("label!", [])
            )

        result = store().prune(
            dangling_only=dangling, in_use=lambda i: i in in_use, matches=matches
        )
        if isinstance(result, dict):
            return json_response(result)
        deleted, space = result if isinstance(result, tuple) else (result, 0)
        return json_response({"ImagesDeleted": deleted or None, "SpaceReclaimed": space})

    def get_one(req: Request) -> Response:
        return _save(store(), [req.params["name"]])

    def get_many(req: Request) -> Response:
        names = req.args("names")
        if not names:
            raise InvalidArgument("no image names given")
        return _save(store(), names)

    def load(req: Request) -> Response:
        quiet = req.flag("quiet")
        messages: list[str] = []

        def progress(msg: Any) -> None:
            messages.append(msg if isinstance(msg, str) else json.dumps(msg))

        loaded = store().load(req.fileobj(), progress=progress)
        for ref in loaded:
            events.publish("image", "load", ref, {"name": ref})
        out = []
        for ref in loaded:
            label = "Loaded image ID" if ref.startswith("sha256:") else "Loaded image"
            out.append(json.dumps({"stream": f"{label}: {ref}\n"}))
        body = ("\n".join(out) + "\n").encode() if out else b""
        del quiet
        return Response(200, body=body, content_type="application/json")

    def create(req: Request) -> Response:
        from_src = req.arg("fromSrc")
        from_image = req.arg("fromImage")
        if from_src:
            if from_src != "-":
                raise NotImplementedYet(
                    f"importing from a URL ({from_src}) is not available: send the tarball in the body (fromSrc=-)"
                )
            repo = req.arg("repo")
            tag_ = req.arg("tag")
            ref = (repo + (":" + tag_ if tag_ else "")) if repo else None
            image_id = store().import_rootfs(
                req.fileobj(), ref, req.args("changes"), req.arg("message")
            )
            events.publish("image", "import", image_id, {"name": ref or image_id})
            return Response(200, body=(json.dumps({"status": image_id}) + "\n").encode())
        if from_image:
            ref = from_image + (
                ":" + req.arg("tag") if req.arg("tag") and "@" not in from_image else ""
            )
            from skiff.types.reference import parse_reference

            parse_reference(ref)  # Docker: 400 `invalid reference format` before any stream starts
            try:
                rec = store().resolve(ref)
            except SkiffError:
                rec = None
            if rec is not None:

                def present() -> Iterator[bytes]:
                    yield (
                        json.dumps({"status": f"Status: Image is up to date for {ref}"}) + "\n"
                    ).encode()

                return Response(200, stream=present())
            from skiff.engine import registry
            from skiff.types.reference import parse_reference

            parse_reference(ref)  # a bad reference is a 400, not an error inside a 200 stream
            auth = _registry_auth(req)
            platform = req.arg("platform")

            def work(progress: Any) -> None:
                image_id = registry.pull(store(), ref, auth, engine.registry, progress, platform)
                events.publish("image", "pull", ref, {"name": ref, "id": image_id})

            return Response(200, stream=registry.stream(work))
        raise InvalidArgument("fromImage or fromSrc is required")

    def bootstrap(req: Request) -> Response:
        """skiff's own endpoint: a base image made on this host, with no network."""
        distro = req.arg("distro")
        tag_ = req.arg("tag")
        suite = req.arg("suite") or "bookworm"
        if distro not in ("busybox", "debian"):
            raise InvalidArgument(f"bootstrap: unknown base {distro!r} (busybox or debian)")

        def work() -> str:
            if distro == "busybox":
                return str(store().bootstrap_busybox(tag_ or "busybox:latest"))
            return str(store().bootstrap_debian(suite, tag_ or f"debian:{suite}"))

        from skiff.engine import registry

        def run(progress: Any) -> None:
            progress({"status": f"Bootstrapping {distro} from this host"})
            image_id = work()
            events.publish("image", "import", image_id, {"name": tag_ or distro})
            progress({"status": f"Built {image_id}"})

        return Response(200, stream=registry.stream(run))

    def push(req: Request) -> Response:
        from skiff.engine import registry

        name = req.params["name"]
        tag_ = req.arg("tag")
        ref = f"{name}:{tag_}" if tag_ else name
        store().resolve(ref)  # 404 before the stream starts, as docker
        auth = _registry_auth(req)

        def work(progress: Any) -> None:
            registry.push(store(), ref, auth, engine.registry, progress)
            events.publish("image", "push", ref, {"name": ref})

        return Response(200, stream=registry.stream(work))

    def search(req: Request) -> Response:
        raise NotImplementedYet("searching registries is not available in skiffd")

    def commit(req: Request) -> Response:
        container = req.arg("container")
        if not container:
            raise InvalidArgument("container is required")
        repo = req.arg("repo")
        tag_ = req.arg("tag")
        ref = (repo + (":" + tag_ if tag_ else "")) if repo else None
        body = req.json() or None
        image_id = engine.commit(
            container,
            repo_ref=ref,
            config=body,
            comment=req.arg("comment"),
            author=req.arg("author"),
            changes=req.args("changes"),
            pause=req.flag("pause", True),
        )
        return json_response({"Id": image_id}, 201)

    r = router.add
    r("GET", "/images/json", list_)
    r("POST", "/images/create", create)
    r("POST", "/skiff/images/bootstrap", bootstrap)
    r("POST", "/images/load", load)
    r("GET", "/images/get", get_many)
    r("POST", "/images/prune", prune)
    r("GET", "/images/search", search)
    r("POST", "/commit", commit)
    r("GET", "/images/{name}/json", inspect)
    r("GET", "/images/{name}/history", history)
    r("GET", "/images/{name}/get", get_one)
    r("POST", "/images/{name}/tag", tag)
    r("POST", "/images/{name}/push", push)
    r("DELETE", "/images/{name}", remove)


def _save(store: Any, refs: list[str]) -> Response:
    for ref in refs:
        store.resolve(ref)
    spool = tempfile.TemporaryFile()
    store.save(refs, spool)
    spool.seek(0)

    def chunks() -> Iterator[bytes]:
        try:
            while True:
                chunk = spool.read(1 << 20)
                if not chunk:
                    return
                yield chunk
        finally:
            spool.close()

    return Response(200, content_type="application/x-tar", stream=chunks())
