"""Image verbs: images, pull, push, tag, rmi, save, load, history, import, image inspect/prune."""

from __future__ import annotations

import os
import sys
from typing import Any, TextIO

from skiff.cli.flags import LIST, STR, Command, Flag, parse_filters, prune_command
from skiff.cli.main import Context, ExitStatus, for_each
from skiff.client.api import iter_json_messages, q

# -- images -----------------------------------------------------------------------------------

IMAGES = Command(
    "images",
    "List images",
    usage="[OPTIONS] [REPOSITORY[:TAG]]",
    flags=[
        Flag("all", "a", help="Show all images (default hides intermediate images)"),
        Flag("digests", help="Show digests"),
        Flag(
            "filter", "f", LIST, metavar="filter", help="Filter output based on conditions provided"
        ),
        Flag("format", kind=STR, default="", help="Format output using a custom template"),
        Flag("no-trunc", help="Don't truncate output"),
        Flag("quiet", "q", help="Only show image IDs"),
    ],
    example="skiff images --format '{{.Repository}}:{{.Tag}} {{.Size}}'",
    max_args=1,
    aliases=("skiff image ls", "skiff image list"),
    args_complete="image",
)

IMAGE_HEADERS = {
    "ID": "IMAGE ID",
    "Repository": "REPOSITORY",
    "Tag": "TAG",
    "Digest": "DIGEST",
    "CreatedSince": "CREATED",
    "CreatedAt": "CREATED AT",
    "Size": "SIZE",
    "Containers": "CONTAINERS",
    "VirtualSize": "VIRTUAL SIZE",
    "SharedSize": "SHARED SIZE",
    "UniqueSize": "UNIQUE SIZE",
}


def familiar_name(repo: str) -> str:
    """docker.io/library/busybox → busybox; docker.io/me/x → me/x."""
    for prefix in (
        "docker.io/library/",
        "docker.io/",
        "index.docker.io/library/",
        "index.docker.io/",
    ):
        if repo.startswith(prefix):
            rest = repo[len(prefix) :]
            return rest
    return repo


def split_tagged(ref: str) -> tuple[str, str]:
    name, _, digest = ref.partition("@")
    last = name.rsplit("/", 1)[-1]
    if ":" in last and not digest:
        repo, _, tag = name.rpartition(":")
        return familiar_name(repo), tag
    return familiar_name(name), digest


class ImageRow:
    def __init__(self, img: dict[str, Any], repo: str, tag: str, digest: str, trunc: bool) -> None:
        self.img = img
        self.Repository = repo
        self.Tag = tag
        self.Digest = digest
        self.trunc = trunc

    @property
    def ID(self) -> str:
        ident = str(self.img.get("Id", ""))
        return ident.removeprefix("sha256:")[:12] if self.trunc else ident

    @property
    def CreatedSince(self) -> str:
        from skiff.cli.output import ago

        created = self.img.get("Created", 0)
        return ago(created) if created else "N/A"

    @property
    def CreatedAt(self) -> str:
        from skiff.cli.output import go_time

        return go_time(self.img.get("Created", 0))

    @property
    def Size(self) -> str:
        from skiff.cli.output import human_size

        return human_size(self.img.get("Size", 0), 3)

    @property
    def Containers(self) -> str:
        n = self.img.get("Containers", -1)
        return "N/A" if n == -1 else str(n)

    @property
    def VirtualSize(self) -> str:
        return self.Size

    @property
    def SharedSize(self) -> str:
        from skiff.cli.output import human_size

        n = self.img.get("SharedSize", -1)
        return "N/A" if n == -1 else human_size(n)

    @property
    def UniqueSize(self) -> str:
        from skiff.cli.output import human_size

        n = self.img.get("SharedSize", -1)
        return "N/A" if n == -1 else human_size(self.img.get("Size", 0) - n)

    def to_json(self) -> dict[str, str]:
        keys = [
            "Containers",
            "CreatedAt",
            "CreatedSince",
            "Digest",
            "ID",
            "Repository",
            "SharedSize",
            "Size",
            "Tag",
            "UniqueSize",
            "VirtualSize",
        ]
        return {k: getattr(self, k) for k in keys}


def image_rows(images: list[dict[str, Any]], digests: bool, trunc: bool) -> list[ImageRow]:
    rows: list[ImageRow] = []
    for img in images:
        repo_tags: dict[str, list[str]] = {}
        repo_digests: dict[str, list[str]] = {}
        for ref in img.get("RepoTags") or []:
            if ref == "<none>:<none>":
                continue
            repo, tag = split_tagged(ref)
            repo_tags.setdefault(repo, []).append(tag)
        for ref in img.get("RepoDigests") or []:
            if ref == "<none>@<none>":
                continue
            name, _, dgst = ref.partition("@")
            repo_digests.setdefault(familiar_name(name), []).append(dgst)
        for repo in sorted(repo_tags):
            dl = repo_digests.pop(repo, [])
            for tag in repo_tags[repo]:
                if not digests or not dl:
                    rows.append(ImageRow(img, repo, tag, "<none>", trunc))
                else:
                    rows.extend(ImageRow(img, repo, tag, d, trunc) for d in dl)
        for repo in sorted(repo_digests):
            if digests:
                rows.extend(ImageRow(img, repo, "<none>", d, trunc) for d in repo_digests[repo])
            else:
                rows.append(ImageRow(img, repo, "<none>", "<none>", trunc))
        if not repo_tags and not repo_digests:
            rows.append(ImageRow(img, "<none>", "<none>", "<none>", trunc))
    return rows


def images(ctx: Context, argv: list[str]) -> int:
    from skiff.cli.output import render

    opts, args = IMAGES.parse(argv)
    filters = parse_filters(opts.filter) or {}
    if args:
        filters.setdefault("reference", {})[args[0]] = True
    imgs = ctx.client.get_json(
        "/images/json",
        {
            "all": opts.all or None,
            "filters": filters or None,
            "digests": True if opts.digests else None,
        },
    )
    rows = image_rows(imgs, opts.digests, not opts.no_trunc)
    if opts.quiet:
        seen: set[str] = set()
        for r in rows:
            if r.ID not in seen:
                seen.add(r.ID)
                print(r.ID)
        return 0
    table = "table {{.Repository}}\t{{.Tag}}\t"
    if opts.digests:
        table += "{{.Digest}}\t"
    table += "{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
    render(opts.format, rows, IMAGE_HEADERS, table)
    return 0


# -- pull / push ------------------------------------------------------------------------------

PULL = Command(
    "pull",
    "Download an image from a registry",
    usage="[OPTIONS] NAME[:TAG|@DIGEST]",
    flags=[
        Flag("all-tags", "a", help="Download all tagged images in the repository"),
        Flag(
            "platform",
            kind=STR,
            default="",
            help="Set platform if server is multi-platform capable",
        ),
        Flag("quiet", "q", help="Suppress verbose output"),
    ],
    example="skiff pull localhost:5000/busybox:latest",
    min_args=1,
    max_args=1,
    args_complete="image",
)


def _registry_auth(ctx: Context, image: str) -> dict[str, str]:
    from skiff.cli.system import auth_header

    header = auth_header(ctx, image)
    return {"X-Registry-Auth": header or "e30="}  # base64("{}")


def pull_image(
    ctx: Context, image: str, platform: str, quiet: bool, out: TextIO, all_tags: bool
) -> None:
    from skiff.cli import progress

    name, tag = _split_name(image)
    if not tag and not all_tags:
        tag = "latest"
    params = {"fromImage": name, "tag": tag or None, "platform": platform or None}
    resp = ctx.client.request("POST", "/images/create", params, headers=_registry_auth(ctx, image))
    progress.show(iter_json_messages(resp), out=out, quiet=quiet)


def _split_name(image: str) -> tuple[str, str]:
    if "@" in image:
        name, _, digest = image.partition("@")
        return name, digest
    last = image.rsplit("/", 1)[-1]
    if ":" in last:
        name, _, tag = image.rpartition(":")
        return name, tag
    return image, ""


def _full_ref(image: str) -> str:
    name, tag = _split_name(image)
    first = name.split("/", 1)[0]
    if "/" not in name or not ("." in first or ":" in first or first == "localhost"):
        name = "docker.io/" + (name if "/" in name else "library/" + name)
    sep = "@" if "@" in image else ":"
    return f"{name}{sep}{tag or 'latest'}"


def pull(ctx: Context, argv: list[str]) -> int:
    opts, args = PULL.parse(argv)
    pull_image(ctx, args[0], opts.platform, opts.quiet, sys.stdout, opts.all_tags)
    print(_full_ref(args[0]))
    return 0


PUSH = Command(
    "push",
    "Upload an image to a registry",
    usage="[OPTIONS] NAME[:TAG]",
    flags=[
        Flag("all-tags", "a", help="Push all tags of an image to the repository"),
        Flag("platform", kind=STR, default="", help="Push a platform-specific manifest"),
        Flag("quiet", "q", help="Suppress verbose output"),
    ],
    example="skiff tag busybox localhost:5000/busybox && skiff push localhost:5000/busybox",
    min_args=1,
    max_args=1,
    args_complete="image",
)


def push(ctx: Context, argv: list[str]) -> int:
    from skiff.cli import progress

    opts, args = PUSH.parse(argv)
    name, tag = _split_name(args[0])
    if not tag and not opts.all_tags:
        tag = "latest"
    params = {"tag": tag or None, "platform": opts.platform or None}
    resp = ctx.client.request(
        "POST", f"/images/{q(name)}/push", params, headers=_registry_auth(ctx, args[0])
    )
    progress.show(iter_json_messages(resp), quiet=opts.quiet)
    if opts.quiet:
        print(args[0] if tag else name)
    return 0


# -- tag / rmi / history / inspect / prune ----------------------------------------------------

TAG = Command(
    "tag",
    "Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE",
    usage="SOURCE_IMAGE[:TAG] TARGET_IMAGE[:TAG]",
    example="skiff tag busybox localhost:5000/busybox:1",
    min_args=2,
    max_args=2,
    args_complete="image",
)


def tag(ctx: Context, argv: list[str]) -> int:
    _, args = TAG.parse(argv)
    repo, tg = _split_name(args[1])
    if "@" in args[1]:
        raise ExitStatus(1, "skiff: refusing to create a tag with a digest reference")
    ctx.client.request(
        "POST", f"/images/{q(args[0])}/tag", {"repo": repo, "tag": tg or "latest"}
    ).read()
    return 0


RMI = Command(
    "rmi",
    "Remove one or more images",
    usage="[OPTIONS] IMAGE [IMAGE...]",
    flags=[
        Flag("force", "f", help="Force removal of the image"),
        Flag("no-prune", help="Do not delete untagged parents"),
    ],
    example="skiff rmi busybox:old",
    min_args=1,
    aliases=("skiff image rm", "skiff image remove"),
    args_complete="image",
)


def rmi(ctx: Context, argv: list[str]) -> int:
    opts, args = RMI.parse(argv)
    params = {"force": opts.force or None, "noprune": opts.no_prune or None}

    def remove(name: str) -> None:
        for item in ctx.client.delete(f"/images/{q(name)}", params) or []:
            for key in ("Untagged", "Deleted"):
                if item.get(key):
                    print(f"{key}: {item[key]}")

    return for_each(args, remove, echo=False)


HISTORY = Command(
    "history",
    "Show the history of an image",
    usage="[OPTIONS] IMAGE",
    flags=[
        Flag("format", kind=STR, default="", help="Format output using a custom template"),
        Flag("human", "H", default=True, help="Print sizes and dates in human readable format"),
        Flag("no-trunc", help="Don't truncate output"),
        Flag("quiet", "q", help="Only show image IDs"),
    ],
    example="skiff history busybox",
    min_args=1,
    max_args=1,
    args_complete="image",
)


class HistoryRow:
    def __init__(self, h: dict[str, Any], trunc: bool, human: bool) -> None:
        self.h, self.trunc, self.human = h, trunc, human

    @property
    def ID(self) -> str:
        ident = str(self.h.get("Id", ""))
        if ident == "<missing>":
            return ident
        return ident.removeprefix("sha256:")[:12] if self.trunc else ident

    @property
    def CreatedSince(self) -> str:
        from skiff.cli.output import ago

        created = self.h.get("Created", 0)
        if not self.human:
            return self.CreatedAt
        return ago(created) if created else "N/A"

    @property
    def CreatedAt(self) -> str:
        import time

        t = time.localtime(self.h.get("Created", 0))
        off = t.tm_gmtoff or 0
        tz = (
            "Z"
            if off == 0
            else f"{'+' if off > 0 else '-'}{abs(off) // 3600:02d}:{abs(off) % 3600 // 60:02d}"
        )
        return time.strftime("%Y-%m-%dT%H:%M:%S", t) + tz

    @property
    def CreatedBy(self) -> str:
        from skiff.cli.output import ellipsis

        text = (self.h.get("CreatedBy") or "").replace("\t", " ")
        return ellipsis(text, 45) if self.trunc else text

    @property
    def Size(self) -> str:
        from skiff.cli.output import human_size

        size = self.h.get("Size", 0)
        return human_size(size, 3) if self.human else str(size)

    @property
    def Comment(self) -> str:
        return str(self.h.get("Comment") or "")

    def to_json(self) -> dict[str, str]:
        return {
            k: getattr(self, k)
            for k in ("Comment", "CreatedAt", "CreatedBy", "CreatedSince", "ID", "Size")
        }


def history(ctx: Context, argv: list[str]) -> int:
    from skiff.cli.output import render

    opts, args = HISTORY.parse(argv)
    items = ctx.client.get_json(f"/images/{q(args[0])}/history")
    rows = [HistoryRow(h, not opts.no_trunc, opts.human) for h in items]
    headers = {
        "ID": "IMAGE",
        "CreatedSince": "CREATED",
        "CreatedAt": "CREATED AT",
        "CreatedBy": "CREATED BY",
        "Size": "SIZE",
        "Comment": "COMMENT",
    }
    table = "table {{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}"
    render(opts.format, rows, headers, table, quiet_field="ID" if opts.quiet else None)
    return 0


IMAGE_INSPECT = Command(
    "image inspect",
    "Display detailed information on one or more images",
    usage="[OPTIONS] IMAGE [IMAGE...]",
    flags=[Flag("format", "f", STR, "", help="Format output using a custom template")],
    example="skiff image inspect -f '{{.Config.Cmd}}' busybox",
    min_args=1,
    args_complete="image",
)


def inspect(ctx: Context, argv: list[str]) -> int:
    from skiff.cli.system import print_inspect

    opts, args = IMAGE_INSPECT.parse(argv)
    return print_inspect(args, opts.format, lambda n: ctx.client.get_json(f"/images/{q(n)}/json"))


IMAGE_PRUNE = prune_command(
    "image prune",
    "Remove unused images",
    "skiff image prune -af",
    all_help="Remove all unused images, not just dangling ones",
)


def prune(ctx: Context, argv: list[str]) -> int:
    from skiff.cli.prune import confirmed, print_deleted_images, print_reclaimed

    opts, _ = IMAGE_PRUNE.parse(argv)
    warning = (
        "WARNING! This will remove all images without at least one container associated to them."
        if opts.all
        else "WARNING! This will remove all dangling images."
    )
    if not confirmed(opts, warning):
        return 0
    filters = parse_filters(opts.filter) or {}
    filters["dangling"] = {"false" if opts.all else "true": True}
    doc = ctx.client.post_json("/images/prune", {"filters": filters}) or {}
    print_deleted_images(doc.get("ImagesDeleted"))
    print_reclaimed(doc.get("SpaceReclaimed", 0))
    return 0


# -- save / load / import ---------------------------------------------------------------------

SAVE = Command(
    "save",
    "Save one or more images to a tar archive (streamed to STDOUT by default)",
    usage="[OPTIONS] IMAGE [IMAGE...]",
    flags=[
        Flag("output", "o", STR, "", help="Write to a file, instead of STDOUT", complete="file"),
        Flag("platform", kind=STR, default="", help="Save only the given platform variant"),
    ],
    example="skiff save -o busybox.tar busybox",
    min_args=1,
    args_complete="image",
)


def save(ctx: Context, argv: list[str]) -> int:
    from skiff.cli.containers import write_stream

    opts, args = SAVE.parse(argv)
    if not opts.output and os.isatty(1):
        raise ExitStatus(
            1, "skiff: cowardly refusing to save to a terminal. Use the -o flag or redirect"
        )
    resp = ctx.client.request(
        "GET", "/images/get", {"names": args, "platform": opts.platform or None}
    )
    write_stream(resp, opts.output, "the image archive")
    return 0


LOAD = Command(
    "load",
    "Load an image from a tar archive or STDIN",
    flags=[
        Flag(
            "input",
            "i",
            STR,
            "",
            help="Read from tar archive file, instead of STDIN",
            complete="file",
        ),
        Flag("quiet", "q", help="Suppress the load output"),
        Flag("platform", kind=STR, default="", help="Load only the given platform variant"),
    ],
    example="skiff load -i busybox.tar",
    max_args=0,
)


def _file_chunks(fh: Any, size: int = 1 << 20) -> Any:
    while True:
        chunk = fh.read(size)
        if not chunk:
            return
        yield chunk


def load(ctx: Context, argv: list[str]) -> int:
    from skiff.cli import progress

    opts, _ = LOAD.parse(argv)
    if not opts.input and os.isatty(0):
        raise ExitStatus(1, "skiff: requested load from stdin, but stdin is empty")
    fh = open(opts.input, "rb") if opts.input else sys.stdin.buffer
    try:
        resp = ctx.client.request_stream(
            "POST",
            "/images/load",
            {"quiet": opts.quiet or not sys.stdout.isatty(), "platform": opts.platform or None},
            _file_chunks(fh),
            {"Content-Type": "application/x-tar"},
        )
        if resp.headers.get("content-type", "").startswith("application/json"):
            progress.show(iter_json_messages(resp))
        else:
            sys.stdout.buffer.write(resp.read())
    finally:
        if opts.input:
            fh.close()
    return 0


IMPORT = Command(
    "import",
    "Import the contents from a tarball to create a filesystem image",
    usage="[OPTIONS] file|URL|- [REPOSITORY[:TAG]]",
    flags=[
        Flag(
            "change",
            "c",
            LIST,
            metavar="list",
            help="Apply Dockerfile instruction to the created image",
        ),
        Flag("message", "m", STR, "", help="Set commit message for imported image"),
        Flag(
            "platform",
            kind=STR,
            default="",
            help="Set platform if server is multi-platform capable",
        ),
    ],
    example="skiff import -c 'CMD [\"sh\"]' rootfs.tar mybox:latest",
    min_args=1,
    max_args=2,
)


def import_(ctx: Context, argv: list[str]) -> int:
    from skiff.cli import progress

    opts, args = IMPORT.parse(argv)
    source = args[0]
    params: dict[str, Any] = {
        "message": opts.message or None,
        "changes": opts.change or None,
        "platform": opts.platform or None,
    }
    if len(args) == 2:
        repo, tg = _split_name(args[1])
        params["repo"], params["tag"] = repo, tg or None
    client = ctx.client
    if source.startswith(("http://", "https://")):
        params["fromSrc"] = source
        resp = client.request("POST", "/images/create", params)
    else:
        params["fromSrc"] = "-"
        fh = sys.stdin.buffer if source == "-" else open(source, "rb")
        try:
            resp = client.request_stream(
                "POST",
                "/images/create",
                params,
                _file_chunks(fh),
                {"Content-Type": "application/x-tar"},
            )
            messages = list(iter_json_messages(resp))
        finally:
            if source != "-":
                fh.close()
        progress.show(iter(messages), quiet=False)
        return 0
    progress.show(iter_json_messages(resp))
    return 0


BOOTSTRAP = Command(
    "bootstrap",
    "Build a base image offline: busybox from the host's static busybox, or debian with debootstrap",
    usage="[OPTIONS] busybox|debian [SUITE]",
    flags=[
        Flag(
            "tag",
            "t",
            kind=STR,
            default="",
            help="Name the image (default busybox:latest / debian:SUITE)",
        )
    ],
    example="skiff image bootstrap busybox",
    min_args=1,
    max_args=2,
)


def bootstrap(ctx: Context, argv: list[str]) -> int:
    from skiff.cli import progress

    opts, args = BOOTSTRAP.parse(argv)
    params = {
        "distro": args[0],
        "suite": args[1] if len(args) > 1 else None,
        "tag": opts.tag or None,
    }
    resp = ctx.client.request("POST", "/skiff/images/bootstrap", params)
    progress.show(iter_json_messages(resp), out=sys.stdout, quiet=False)
    return 0
