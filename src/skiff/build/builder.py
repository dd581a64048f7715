"""The builder: a Dockerfile and a context → an image, step by step, like Docker's legacy builder.

Vocabulary. A *stage* starts at FROM; its *state* is the image it has so far (config, layers,
chain ids) plus its ARGs and SHELL. Every instruction is a *step* that makes a new image from the
state's image: metadata steps (ENV, CMD, …) change only the config and add a history entry with
`empty_layer: true`; RUN, COPY, ADD and WORKDIR run on an *active snapshot* of the state's layers
(prepared, mounted, changed, unmounted) whose changes become a new layer, committed under its
chain id (an empty diff adds no layer). The *cache* maps (parent image id, the step's text with
the build args it sees, the checksum of copied sources) to the image the step made before.

Output is what Docker's legacy builder prints ("Step N/M : …", " ---> Using cache",
" ---> <id>", "Successfully built <id>"), as `{"stream": …}` messages to `emit`.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import os
import posixpath
import re
import shutil
import stat
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

from skiff.build import dockerfile as df
from skiff.build import steprun
from skiff.build.context import Context, Entry, checksum, extract_tar
from skiff.build.shell_words import expand_word
from skiff.errors import (
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    NotImplementedYet,
    SkiffError,
)
from skiff.linux.mount import mount_all, unmount_all
from skiff.linux.paths import mkdir_all_in_root, resolve_in_root
from skiff.types import mediatypes as mt
from skiff.types.digest import Digest
from skiff.types.image import Descriptor, Manifest, canonical_json, chain_ids

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
DEFAULT_SHELL = ["/bin/sh", "-c"]
HOST_OS, HOST_ARCH = "linux", "amd64"
STUBS = ("/proc", "/dev", "/sys", "/etc/hosts", "/etc/hostname", "/etc/resolv.conf")

Emit = Callable[[dict[str, Any]], None]


class BuildError(FailedPrecondition):
    """A step failed; `code` is the RUN's exit code when there is one."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class BuildOptions:
    images: Any  # skiff.images.store.ImageStore
    state_dir: Path  # persistent: cache index, cache mounts
    run_dir: Path  # volatile: bundles, mount points, unpacked contexts
    runtime: str = "skiff-runtime"
    runtime_root: str = "/run/skiff/runtime"
    dockerfile: str = "Dockerfile"
    tags: list[str] = field(default_factory=list)
    build_args: dict[str, str | None] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    target: str = ""
    no_cache: bool = False
    pull: bool = False
    quiet: bool = False
    network: str = "default"
    platform: str = ""
    remove: bool = True
    force_remove: bool = False


@dataclass
class State:
    """A stage's image so far."""

    name: str | None
    image_id: str
    config: dict[str, Any]  # the whole image config
    layers: list[Descriptor]
    diff_ids: list[Digest]
    chains: list[Digest]
    args: dict[str, str | None] = field(default_factory=dict)
    shell: list[str] = field(default_factory=lambda: list(DEFAULT_SHELL))
    cmd_set: bool = False

    @property
    def cc(self) -> dict[str, Any]:
        cfg: dict[str, Any] = self.config.setdefault("config", {})
        return cfg


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def short(image_id: str) -> str:
    return image_id.removeprefix("sha256:")[:12]


def platform_args() -> dict[str, str]:
    plat = f"{HOST_OS}/{HOST_ARCH}"
    return {
        "TARGETPLATFORM": plat,
        "TARGETOS": HOST_OS,
        "TARGETARCH": HOST_ARCH,
        "TARGETVARIANT": "",
        "BUILDPLATFORM": plat,
        "BUILDOS": HOST_OS,
        "BUILDARCH": HOST_ARCH,
        "BUILDVARIANT": "",
    }


def check_platform(value: str, where: str) -> None:
    if not value:
        return
    parts = value.lower().split("/")
    if parts[0] != HOST_OS or (len(parts) > 1 and parts[1] not in (HOST_ARCH, "x86_64")):
        raise InvalidArgument(
            f"{where}: platform {value!r} is not supported: skiff builds only for linux/amd64"
        )


def _env_dict(env: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in env or []:
        k, _, v = item.partition("=")
        out[k] = v
    return out


def _set_env(env: list[str], key: str, value: str) -> list[str]:
    out = list(env or [])
    for i, item in enumerate(out):
        if item.partition("=")[0] == key:
            out[i] = f"{key}={value}"
            return out
    out.append(f"{key}={value}")
    return out


def parse_duration(text: str, what: str) -> int:
    """A Go duration ("30s", "1m30s", "500ms") → nanoseconds."""
    units = {
        "ns": 1,
        "us": 1000,
        "µs": 1000,
        "ms": 10**6,
        "s": 10**9,
        "m": 60 * 10**9,
        "h": 3600 * 10**9,
    }
    if text in ("0", ""):
        return 0
    total = 0.0
    pos = 0
    for m in re.finditer(r"(\d+(?:\.\d*)?)(ns|us|µs|ms|s|m|h)", text):
        if m.start() != pos:
            break
        total += float(m.group(1)) * units[m.group(2)]
        pos = m.end()
    if pos != len(text) or pos == 0:
        raise InvalidArgument(f"{what}: time: invalid duration {text!r}")
    return int(total)


def expand_ports(spec: str, where: str) -> list[str]:
    port, _, proto = spec.partition("/")
    proto = (proto or "tcp").lower()
    if proto not in ("tcp", "udp", "sctp"):
        raise InvalidArgument(f"{where}: invalid proto: {proto}")
    if ":" in port:
        port = port.rsplit(":", 1)[1]
    lo, dash, hi = port.partition("-")
    try:
        start = int(lo)
        end = int(hi) if dash else start
    except ValueError:
        raise InvalidArgument(f"{where}: invalid port: {spec}") from None
    if not (0 < start <= end <= 65535):
        raise InvalidArgument(f"{where}: invalid port range: {spec}")
    return [f"{p}/{proto}" for p in range(start, end + 1)]


# ------------------------------------------------------------------------------- snapshots


class Layers:
    """Active snapshots for steps, and turning their changes into layers and images."""

    def __init__(self, images: Any, run_dir: Path) -> None:
        self.images = images
        self.snaps = images.snapshots
        self.run_dir = run_dir

    @contextlib.contextmanager
    def mounted(self, parent_chain: str, key: str) -> Iterator[str]:
        """An active snapshot on `parent_chain`, mounted; unmounted at the end (not removed)."""
        mounts = self.snaps.prepare(key, parent_chain, labels={"skiff.build": "step"})
        target = self.run_dir / "rootfs" / key.replace(" ", "_")
        target.mkdir(parents=True, exist_ok=True)
        try:
            mount_all(mounts, str(target))
            try:
                yield str(target)
            finally:
                unmount_all(str(target))
        finally:
            with contextlib.suppress(OSError):
                target.rmdir()

    def remove(self, key: str) -> None:
        with contextlib.suppress(NotFound):
            self.snaps.remove(key)

    def commit(self, state: State, key: str) -> tuple[Descriptor, Digest, Digest] | None:
        """The active snapshot's changes as a layer on the state's layers (None when empty);
        the snapshot is committed under the new chain id (or removed)."""
        from skiff.images.layer import diff_to_tar
        from skiff.images.rootfs import diff_trees

        upper = self.snaps.upper_path(key)
        lowers = self.snaps.lower_paths(key)
        overlay = self.snaps.whiteout_mode == "overlay"
        if overlay and not any(os.scandir(upper)):
            self.remove(key)
            return None
        tmp_dir = self.images.tmp
        with tempfile.NamedTemporaryFile(dir=tmp_dir, prefix="build-layer-") as tmp:
            if overlay:
                diff_to_tar(upper, tmp, lowers)  # type: ignore[arg-type]
            else:
                empty = tmp_dir / f"empty-{uuid.uuid4().hex}"
                empty.mkdir()
                try:
                    diff_trees(lowers[0] if lowers else empty, upper, tmp)  # type: ignore[arg-type]
                finally:
                    empty.rmdir()
            tmp.flush()
            tmp.seek(0)
            import tarfile

            with tarfile.open(fileobj=tmp, mode="r:") as tf:
                if tf.next() is None:
                    self.remove(key)
                    return None
            tmp.seek(0)
            digest = self.images.content.ingest(tmp)
        desc = Descriptor(mt.OCI_LAYER, digest, self.images.content.size(digest))
        chain = chain_ids([*state.diff_ids, digest])[-1]
        try:
            committed = self.snaps.stat(str(chain)).kind.name == "COMMITTED"
        except NotFound:
            committed = False
        if committed:
            self.remove(key)
        else:
            try:
                self.snaps.commit(str(chain), key)
            except SkiffError:
                self.remove(key)
                raise
        return desc, digest, chain

    def write_image(
        self, config: dict[str, Any], layers: list[Descriptor], parent: str = ""
    ) -> str:
        """Register a step's image; `parent` is the previous step's image (as Docker's legacy
        builder records it, so `images` hides intermediates and `rmi` removes them)."""
        content = self.images.content
        cfg = canonical_json(config)
        cfg_digest = content.ingest(cfg, Digest.of_bytes(cfg))
        manifest = Manifest(
            Descriptor(mt.OCI_CONFIG, cfg_digest, len(cfg)), tuple(layers), mt.OCI_MANIFEST
        )
        data = manifest.to_bytes()
        m_digest = content.ingest(data, Digest.of_bytes(data))
        return str(self.images.create_image(m_digest, [], parent=parent).id)


# ------------------------------------------------------------------------------- cache


class Cache:
    """(parent image id, step key) → image id, one small file per entry (atomic writes)."""

    def __init__(self, directory: Path, images: Any) -> None:
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.images = images

    def _path(self, parent: str, text: str) -> Path:
        return self.dir / hashlib.sha256(f"{parent}\n{text}".encode()).hexdigest()

    def get(self, parent: str, text: str) -> Any | None:
        try:
            image_id = self._path(parent, text).read_text().strip()
        except FileNotFoundError:
            return None
        try:
            return self.images.resolve(image_id)
        except NotFound:
            return None

    def put(self, parent: str, text: str, image_id: str) -> None:
        path = self._path(parent, text)
        tmp = path.with_suffix(f".{uuid.uuid4().hex}.tmp")
        tmp.write_text(image_id)
        os.replace(tmp, path)


# ------------------------------------------------------------------------------- the build


def build(
    context: BinaryIO | Path,
    options: BuildOptions,
    emit: Emit,
    cancelled: Callable[[], bool] = lambda: False,
) -> str:
    """Build `context` (a directory, or a tar stream as `docker build` sends it). Returns the
    image id. Raises from the closed error set; BuildError for a failing step."""
    options.run_dir.mkdir(parents=True, exist_ok=True)
    if isinstance(context, Path):
        return Builder(Context(context), options, emit, cancelled).run()
    work = Path(tempfile.mkdtemp(prefix="context-", dir=options.run_dir))
    try:
        with _unpacked(context, work) as root:
            return Builder(Context(root), options, emit, cancelled).run()
    finally:
        shutil.rmtree(work, ignore_errors=True)


CONTEXT_TMPFS = "size=1g,mode=0755"


@contextlib.contextmanager
def _unpacked(src: BinaryIO, work: Path) -> Iterator[Path]:
    """The context tar unpacked under `work`: into a private tmpfs (small files are created
    much faster there than on a journaling disk), or on disk when the tmpfs cannot be mounted
    or is too small for the context."""
    import errno

    from skiff.linux.mount import mount, umount2

    seekable = getattr(src, "seekable", lambda: False)()
    if not seekable:
        spool = work / "context.tar"
        with open(spool, "wb") as out:
            shutil.copyfileobj(src, out, 1 << 20)
        src = open(spool, "rb")  # closed below
    start = src.tell()
    root = work / "ctx"
    root.mkdir()
    mounted = False
    try:
        try:
            mount("tmpfs", str(root), "tmpfs", 0x2 | 0x4, CONTEXT_TMPFS)  # nosuid, nodev
            mounted = True
        except OSError:
            pass
        try:
            extract_tar(src, root)
        except OSError as exc:
            if exc.errno != errno.ENOSPC or not mounted:
                raise InvalidArgument(f"build context: {exc}") from None
            umount2(str(root), 2)
            mounted = False
            shutil.rmtree(root)
            root.mkdir()
            src.seek(start)
            extract_tar(src, root)
        yield root
    finally:
        if mounted:
            umount2(str(root), 2)  # MNT_DETACH
        if not seekable:
            src.close()


class Builder:
    def __init__(
        self, ctx: Context, options: BuildOptions, emit: Emit, cancelled: Callable[[], bool]
    ) -> None:
        self.ctx = ctx
        self.opt = options
        self.cancelled = cancelled
        self.quiet_buffer: list[str] = []
        self._emit = emit
        self.layers = Layers(options.images, options.run_dir)
        self.cache = Cache(options.state_dir / "cache", options.images)
        self.stages: dict[str, State] = {}
        self.by_index: list[State] = []
        self.used_args: set[str] = set()
        self.step = 0
        self.total = 0
        self.escape = "\\"
        self.meta: dict[str, str | None] = {}
        self.network = steprun.network_mode(options.network)
        self.in_trigger = False
        check_platform(options.platform, "build")

    # -- output --------------------------------------------------------------------------
    def say(self, text: str) -> None:
        if self.opt.quiet:
            self.quiet_buffer.append(text)
        else:
            self._emit({"stream": text})

    def flush_quiet(self) -> None:
        if self.opt.quiet and self.quiet_buffer:
            self._emit({"stream": "".join(self.quiet_buffer)})
            self.quiet_buffer.clear()

    def check_cancel(self) -> None:
        if self.cancelled():
            raise steprun.Cancelled("build cancelled: the client went away")

    # -- driver --------------------------------------------------------------------------
    def read_dockerfile(self) -> str:
        name = self.opt.dockerfile or "Dockerfile"
        rel = posixpath.normpath(name).lstrip("/")
        if rel.startswith(".."):
            raise InvalidArgument(f"the Dockerfile ({name}) must be within the build context")
        host = resolve_in_root(self.ctx.root, rel)
        try:
            with open(host, encoding="utf-8") as f:
                text = f.read()
        except (FileNotFoundError, IsADirectoryError):
            if name == "Dockerfile" and os.path.exists(os.path.join(self.ctx.root, "dockerfile")):
                with open(os.path.join(self.ctx.root, "dockerfile"), encoding="utf-8") as f:
                    return f.read()
            raise NotFound(f"Cannot locate specified Dockerfile: {name}") from None
        return text

    def run(self) -> str:
        try:
            return self._run()
        except SkiffError:
            self.flush_quiet()
            raise

    def _run(self) -> str:
        parsed = df.parse(self.read_dockerfile())
        self.escape = parsed.escape
        stages = parsed.stages
        if self.opt.target:
            target = parsed.stage(self.opt.target)
            stages = stages[: target.index + 1]
        extra: list[df.Instruction] = []
        if self.opt.labels:
            text = "LABEL " + " ".join(
                f"{json.dumps(k)}={json.dumps(v)}" for k, v in sorted(self.opt.labels.items())
            )
            extra = list(df.parse("FROM scratch\n" + text + "\n").stages[0].instructions)
        self.total = (
            len(parsed.meta_args)
            + len(stages)
            + sum(len(s.instructions) for s in stages)
            + len(extra)
        )
        # meta args: the global scope, seen by FROM lines
        meta_env: dict[str, str | None] = dict(platform_args())
        for ins in parsed.meta_args:
            self.print_step(ins)
            for name, default in df.arg_decl(ins, self._defined(meta_env), self.escape):
                if name in self.opt.build_args:
                    self.used_args.add(name)
                    meta_env[name] = self.opt.build_args[name]
                else:
                    meta_env[name] = default
        self.meta = meta_env
        state: State | None = None
        for i, stage in enumerate(stages):
            self.check_cancel()
            state = self.from_(stage)
            instructions = list(stage.instructions)
            if i == len(stages) - 1:
                instructions += extra
            for ins in instructions:
                self.check_cancel()
                self.print_step(ins)
                self.dispatch(state, ins)
            self.by_index.append(state)
            if stage.name:
                self.stages[stage.name] = state
        assert state is not None
        image_id = state.image_id
        if not image_id:
            image_id = self.layers.write_image(self.final_config(state), state.layers)
        unused = sorted(
            k
            for k in self.opt.build_args
            if k not in self.used_args and k not in df.PREDEFINED_ARGS
        )
        if unused:
            self.say(f"[Warning] One or more build-args [{' '.join(unused)}] were not consumed\n")
        self._emit({"aux": {"ID": image_id}})
        if self.opt.quiet:
            self.quiet_buffer.clear()
            self._emit({"stream": image_id + "\n"})
        else:
            self.say(f"Successfully built {short(image_id)}\n")
        for tag in self.opt.tags:
            self.opt.images.tag(image_id, tag)
            if not self.opt.quiet:
                from skiff.types.reference import parse_reference

                self.say(f"Successfully tagged {parse_reference(tag).familiar_name()}\n")
        return image_id

    def print_step(self, ins: df.Instruction) -> None:
        self.step += 1
        text = ins.original.split("\n", 1)[0] if ins.heredocs else ins.original
        self.say(f"Step {self.step}/{self.total} : {text}\n")

    @staticmethod
    def _defined(env: dict[str, str | None]) -> dict[str, str]:
        return {k: v for k, v in env.items() if v is not None}

    def env_for(self, state: State) -> dict[str, str]:
        """The variables an instruction's words expand with: ARGs, overridden by ENV."""
        out = self._defined(state.args)
        out.update(_env_dict(state.cc.get("Env") or []))
        return out

    def final_config(self, state: State) -> dict[str, Any]:
        cfg = copy.deepcopy(state.config)
        cfg.setdefault("created", now_rfc3339())
        return cfg

    # -- FROM ------------------------------------------------------------------------------
    def from_(self, stage: df.Stage) -> State:
        ins = df.Instruction("FROM", (stage.base,), stage.line, f"FROM {stage.base}")
        self.step += 1
        original = f"FROM {stage.base}" + (f" AS {stage.name}" if stage.name else "")
        if stage.platform:
            original = f"FROM --platform={stage.platform} {stage.base}" + (
                f" AS {stage.name}" if stage.name else ""
            )
        self.say(f"Step {self.step}/{self.total} : {original}\n")
        env = self._defined(self.meta)
        base = expand_word(stage.base, env, self.escape)
        if stage.platform:
            check_platform(
                expand_word(stage.platform, env, self.escape), f"line {stage.line}: FROM"
            )
        if not base:
            raise InvalidArgument(
                f"line {stage.line}: FROM: base name ({stage.base}) should not be blank"
            )
        state: State
        if base.lower() == "scratch":
            state = State(
                stage.name,
                "",
                {
                    "architecture": HOST_ARCH,
                    "os": HOST_OS,
                    "config": {},
                    "rootfs": {"type": "layers", "diff_ids": []},
                    "history": [],
                },
                [],
                [],
                [],
            )
        elif base.lower() in self.stages:
            state = self._copy_state(self.stages[base.lower()], stage.name)
        else:
            try:
                rec = self.opt.images.resolve(base)
            except NotFound:
                raise NotFound(
                    f"pull access denied for {base}: the image is not present locally and skiff "
                    "cannot pull images yet (load or import it first)"
                ) from None
            cfg = copy.deepcopy(rec.config)
            if (cfg.get("os") or HOST_OS) != HOST_OS or (
                cfg.get("architecture") or HOST_ARCH
            ) != HOST_ARCH:
                raise InvalidArgument(
                    f"line {stage.line}: FROM {base}: image is for {cfg.get('os')}/{cfg.get('architecture')}, skiff builds only for linux/amd64"
                )
            state = State(
                stage.name, rec.id, cfg, list(rec.layers), list(rec.diff_ids), list(rec.chain_ids)
            )
        cc = state.cc
        if not any(e.startswith("PATH=") for e in cc.get("Env") or []):
            cc["Env"] = [*(cc.get("Env") or []), f"PATH={DEFAULT_PATH}"]
        if cc.get("Shell"):
            state.shell = list(cc["Shell"])
        state.args = {}
        state.cmd_set = False
        triggers = list(cc.get("OnBuild") or [])
        if triggers:
            cc["OnBuild"] = None
            self.say(
                f"# Executing {len(triggers)} build trigger{'s' if len(triggers) > 1 else ''}\n"
            )
            for trigger in triggers:
                try:
                    sub = df.parse(f"FROM scratch\n{trigger}\n").stages[0].instructions
                except InvalidArgument as err:
                    raise err.wrap(f"ONBUILD trigger {trigger!r}")
                self.in_trigger = True
                try:
                    for t in sub:
                        self.dispatch(state, t)
                finally:
                    self.in_trigger = False
        self.say(f" ---> {short(state.image_id)}\n")  # empty for scratch, as Docker prints it
        del ins
        return state

    @staticmethod
    def _copy_state(src: State, name: str | None) -> State:
        return State(
            name,
            src.image_id,
            copy.deepcopy(src.config),
            list(src.layers),
            list(src.diff_ids),
            list(src.chains),
        )

    # -- dispatch ----------------------------------------------------------------------------
    def dispatch(self, state: State, ins: df.Instruction) -> None:
        handler = getattr(self, f"i_{ins.cmd.lower()}", None)
        if handler is None:
            raise InvalidArgument(f"{ins.where()}: unknown instruction: {ins.cmd}")
        try:
            handler(state, ins)
        except BuildError:
            raise
        except SkiffError as err:
            if err.message.startswith(
                ("line ", "The command", "build cancelled", "COPY failed", "ADD failed")
            ):
                raise
            raise err.wrap(ins.where()) from err

    def created_by_nop(self, state: State, text: str) -> str:
        return " ".join([*state.shell, "#(nop) ", text])

    def cached(self, state: State, key: str) -> bool:
        """Use the cache for this step if it can; True when it did."""
        if self.opt.no_cache:
            return False
        rec = self.cache.get(state.image_id or "scratch", key)
        if rec is None:
            return False
        state.image_id = rec.id
        state.config = copy.deepcopy(rec.config)
        state.layers = list(rec.layers)
        state.diff_ids = list(rec.diff_ids)
        state.chains = list(rec.chain_ids)
        self.say(" ---> Using cache\n")
        if not self.in_trigger:
            self.say(f" ---> {short(rec.id)}\n")
        return True

    def commit(
        self,
        state: State,
        key: str,
        created_by: str,
        layer: tuple[Descriptor, Digest, Digest] | None,
        *,
        container: str | None = None,
    ) -> None:
        now = now_rfc3339()
        cfg = state.config
        cfg["created"] = now
        cfg["architecture"] = cfg.get("architecture") or HOST_ARCH
        cfg["os"] = cfg.get("os") or HOST_OS
        cfg["docker_version"] = "skiff"
        cfg.pop("container_config", None)
        cfg.pop("container", None)
        hist: dict[str, Any] = {"created": now, "created_by": created_by}
        if layer is None:
            hist["empty_layer"] = True
        else:
            desc, diff_id, chain = layer
            state.layers.append(desc)
            state.diff_ids.append(diff_id)
            state.chains.append(chain)
        cfg["history"] = [*(cfg.get("history") or []), hist]
        cfg["rootfs"] = {"type": "layers", "diff_ids": [str(d) for d in state.diff_ids]}
        parent = state.image_id or "scratch"
        state.image_id = self.layers.write_image(cfg, state.layers, state.image_id)
        if not self.opt.no_cache:
            self.cache.put(parent, key, state.image_id)
        if container is not None and (self.opt.remove or self.opt.force_remove):
            self.say(f"Removing intermediate container {container[:12]}\n")
        if not self.in_trigger:
            self.say(f" ---> {short(state.image_id)}\n")

    def metadata(self, state: State, text: str, change: Callable[[dict[str, Any]], None]) -> None:
        created_by = self.created_by_nop(state, text)
        if self.cached(state, created_by):
            return
        change(state.cc)
        cid = uuid.uuid4().hex + uuid.uuid4().hex
        self.say(f" ---> Running in {cid[:12]}\n")
        self.commit(state, created_by, created_by, None, container=cid)

    # -- metadata instructions -------------------------------------------------------------
    def i_env(self, state: State, ins: df.Instruction) -> None:
        pairs = df.key_values(ins, self.env_for(state), self.escape)

        def change(cc: dict[str, Any]) -> None:
            env = list(cc.get("Env") or [])
            for k, v in pairs:
                env = _set_env(env, k, v)
            cc["Env"] = env

        self.metadata(state, "ENV " + " ".join(f"{k}={v}" for k, v in pairs), change)

    def i_label(self, state: State, ins: df.Instruction) -> None:
        pairs = df.key_values(ins, self.env_for(state), self.escape)

        def change(cc: dict[str, Any]) -> None:
            labels = dict(cc.get("Labels") or {})
            labels.update(pairs)
            cc["Labels"] = labels

        self.metadata(state, "LABEL " + " ".join(f"{k}={v}" for k, v in pairs), change)

    def i_maintainer(self, state: State, ins: df.Instruction) -> None:
        author = expand_word(" ".join(ins.args), self.env_for(state), self.escape)

        def change(cc: dict[str, Any]) -> None:
            state.config["author"] = author

        self.metadata(state, f"MAINTAINER {author}", change)

    def i_arg(self, state: State, ins: df.Instruction) -> None:
        decls = df.arg_decl(ins, self.env_for(state), self.escape)
        auto = platform_args()
        for name, default in decls:
            if name in self.opt.build_args:
                self.used_args.add(name)
                value = self.opt.build_args[name]
            elif default is not None:
                value = default
            elif name in self.meta and self.meta[name] is not None:
                value = self.meta[name]
            else:
                value = auto.get(name)
            state.args[name] = value
        text = "ARG " + " ".join(ins.args)
        self.metadata(state, text, lambda cc: None)

    def i_user(self, state: State, ins: df.Instruction) -> None:
        user = expand_word(ins.args[0], self.env_for(state), self.escape)
        self.metadata(state, f"USER {user}", lambda cc: cc.__setitem__("User", user))

    def i_cmd(self, state: State, ins: df.Instruction) -> None:
        cmd = df.command_form(ins, state.shell)
        state.cmd_set = True
        self.metadata(state, f"CMD {json.dumps(cmd)}", lambda cc: cc.__setitem__("Cmd", cmd))

    def i_entrypoint(self, state: State, ins: df.Instruction) -> None:
        ep = df.command_form(ins, state.shell) if (ins.args or ins.json_form) else []
        if not ins.json_form and not " ".join(ins.args).strip():
            ep = []

        def change(cc: dict[str, Any]) -> None:
            cc["Entrypoint"] = ep
            if not state.cmd_set:
                cc["Cmd"] = None

        self.metadata(state, f"ENTRYPOINT {json.dumps(ep)}", change)

    def i_expose(self, state: State, ins: df.Instruction) -> None:
        env = self.env_for(state)
        ports: list[str] = []
        for word in df.words(ins, env, self.escape):
            ports += expand_ports(word, ins.where())

        def change(cc: dict[str, Any]) -> None:
            exposed = dict(cc.get("ExposedPorts") or {})
            for p in ports:
                exposed[p] = {}
            cc["ExposedPorts"] = exposed

        self.metadata(state, "EXPOSE " + " ".join(sorted(set(ports))), change)

    def i_volume(self, state: State, ins: df.Instruction) -> None:
        vols = df.words(ins, self.env_for(state), self.escape)
        for v in vols:
            if not v.strip():
                raise InvalidArgument(f"{ins.where()}: VOLUME specified can not be an empty string")

        def change(cc: dict[str, Any]) -> None:
            volumes = dict(cc.get("Volumes") or {})
            for v in vols:
                volumes[v] = {}
            cc["Volumes"] = volumes

        self.metadata(state, f"VOLUME {json.dumps(vols)}", change)

    def i_stopsignal(self, state: State, ins: df.Instruction) -> None:
        from skiff.engine.oci import parse_signal

        sig = expand_word(ins.args[0], self.env_for(state), self.escape)
        parse_signal(sig)
        self.metadata(state, f"STOPSIGNAL {sig}", lambda cc: cc.__setitem__("StopSignal", sig))

    def i_shell(self, state: State, ins: df.Instruction) -> None:
        shell = list(ins.args)

        def change(cc: dict[str, Any]) -> None:
            cc["Shell"] = shell

        self.metadata(state, f"SHELL {json.dumps(shell)}", change)
        state.shell = shell

    def i_onbuild(self, state: State, ins: df.Instruction) -> None:
        trigger = re.sub(r"^\s*ONBUILD\s+", "", ins.original, flags=re.IGNORECASE).strip()

        def change(cc: dict[str, Any]) -> None:
            cc["OnBuild"] = [*(cc.get("OnBuild") or []), trigger]

        self.metadata(state, f"ONBUILD {trigger}", change)

    def i_healthcheck(self, state: State, ins: df.Instruction) -> None:
        args = list(ins.args)
        kind = args[0].upper()
        hc: dict[str, Any]
        if kind == "NONE":
            if len(args) > 1 or ins.flags:
                raise InvalidArgument(f"{ins.where()}: HEALTHCHECK NONE takes no arguments")
            hc = {"Test": ["NONE"]}
        elif kind == "CMD":
            rest = args[1:]
            if not rest or not "".join(rest).strip():
                raise InvalidArgument(f"{ins.where()}: Missing command after HEALTHCHECK CMD")
            test = ["CMD", *rest] if ins.json_form else ["CMD-SHELL", " ".join(rest)]
            hc = {"Test": test}
            allowed = {
                "interval": "Interval",
                "timeout": "Timeout",
                "start-period": "StartPeriod",
                "start-interval": "StartInterval",
            }
            for f in ins.flags:
                key, _, value = f[2:].partition("=")
                if key in allowed:
                    ns = parse_duration(value, f"{ins.where()}: --{key}")
                    if 0 < ns < 10**6:
                        raise InvalidArgument(
                            f'{ins.where()}: Interval "{key}" cannot be less than 1ms'
                        )
                    if ns:
                        hc[allowed[key]] = ns
                elif key == "retries":
                    try:
                        retries = int(value)
                    except ValueError:
                        raise InvalidArgument(
                            f"{ins.where()}: --retries: invalid number {value!r}"
                        ) from None
                    if retries < 0:
                        raise InvalidArgument(
                            f"{ins.where()}: --retries cannot be negative ({retries})"
                        )
                    if retries:
                        hc["Retries"] = retries
                else:
                    raise InvalidArgument(f"{ins.where()}: unknown flag: --{key}")
        else:
            raise InvalidArgument(f"{ins.where()}: Unknown type {kind!r} in HEALTHCHECK (try CMD)")
        self.metadata(
            state,
            f"HEALTHCHECK {json.dumps(hc, sort_keys=True)}",
            lambda cc: cc.__setitem__("Healthcheck", hc),
        )

    # -- WORKDIR ---------------------------------------------------------------------------
    def i_workdir(self, state: State, ins: df.Instruction) -> None:
        path = expand_word(ins.args[0], self.env_for(state), self.escape)
        if not path.startswith("/"):
            path = posixpath.join(state.cc.get("WorkingDir") or "/", path)
        path = posixpath.normpath(path)
        created_by = self.created_by_nop(state, f"WORKDIR {path}")
        if self.cached(state, created_by):
            return
        state.cc["WorkingDir"] = path
        key = f"build-{uuid.uuid4().hex}"
        parent = str(state.chains[-1]) if state.chains else ""
        try:
            with self.layers.mounted(parent, key) as rootfs:
                mkdir_all_in_root(rootfs, path)
            layer = self.layers.commit(state, key)
        except BaseException:
            self.layers.remove(key)
            raise
        self.say(f" ---> Running in {key[6:18]}\n")
        self.commit(state, created_by, created_by, layer, container=key[6:])

    # -- RUN -------------------------------------------------------------------------------
    def run_args(
        self, state: State, ins: df.Instruction
    ) -> tuple[list[str], list[tuple[str, str]]]:
        """The process args, plus heredoc scripts to mount at /dev/pipes/<name>."""
        if ins.json_form:
            return list(ins.args), []
        text = " ".join(ins.args)
        if ins.heredocs:
            if text.strip() == f"<<{ins.heredocs[0].name}" or re.fullmatch(
                r"<<-?['\"]?\w+['\"]?", text.strip()
            ):
                h = ins.heredocs[0]
                if h.content.startswith("#!"):
                    return [f"/dev/pipes/{h.name}"], [(h.name, h.content)]
                return [*state.shell, h.content], []
            body = text + "\n" + "".join(h.content + h.name + "\n" for h in ins.heredocs)
            return [*state.shell, body], []
        return [*state.shell, text], []

    def i_run(self, state: State, ins: df.Instruction) -> None:
        args, scripts = self.run_args(state, ins)
        network = self.network
        mounts_spec: list[dict[str, str]] = []
        for f in ins.flags:
            key, _, value = f[2:].partition("=")
            if key == "network":
                network = steprun.network_mode(value)
            elif key == "mount":
                mounts_spec.append(self.parse_run_mount(value, ins))
            elif key == "security":
                if value != "sandbox":
                    raise NotImplementedYet(
                        f"{ins.where()}: RUN --security={value} is not supported"
                    )
            else:
                raise InvalidArgument(f"{ins.where()}: unknown flag: {key}")
        allowed = {k: v for k, v in state.args.items() if v is not None}
        env_names = set(_env_dict(state.cc.get("Env") or []))
        for k, v in self.opt.build_args.items():
            if k in df.PREDEFINED_ARGS and v is not None:
                allowed.setdefault(k, v)
                self.used_args.add(k)
        visible = {k: v for k, v in allowed.items() if k not in env_names}
        recorded = sorted(f"{k}={v}" for k, v in visible.items() if k not in df.PREDEFINED_ARGS)
        cmd_text = (
            " ".join(args)
            if not scripts
            else " ".join([*state.shell, ins.original.split("RUN", 1)[-1].strip()])
        )
        created_by = (f"|{len(recorded)} {' '.join(recorded)} " if recorded else "") + cmd_text
        # as Docker: the build-wide --network is not part of the cache key (a RUN --network is)
        key = json.dumps([created_by, ins.flags, scripts])
        if self.cached(state, key):
            return
        env = list(state.cc.get("Env") or [])
        for k, v in sorted(visible.items()):
            env.append(f"{k}={v}")
        snap = f"build-{uuid.uuid4().hex}"
        cid = snap[6:] + uuid.uuid4().hex
        self.say(f" ---> Running in {cid[:12]}\n")
        parent = str(state.chains[-1]) if state.chains else ""
        try:
            with contextlib.ExitStack() as stack:
                rootfs = stack.enter_context(self.layers.mounted(parent, snap))
                extra = self.mounts_for_run(stack, rootfs, mounts_spec, ins)
                for name, content in scripts:
                    host = self.opt.run_dir / "scripts" / f"{cid}-{name}"
                    host.parent.mkdir(parents=True, exist_ok=True)
                    host.write_text(content)
                    host.chmod(0o755)
                    stack.callback(host.unlink)
                    extra.append(
                        {
                            "destination": f"/dev/pipes/{name}",
                            "type": "bind",
                            "source": str(host),
                            "options": ["rbind", "ro"],
                        }
                    )
                existed = self.stub_state(rootfs, [*STUBS, *(m["destination"] for m in extra)])
                code = steprun.run_step(
                    steprun.StepSpec(
                        container_id=cid,
                        rootfs=rootfs,
                        args=args,
                        env=env,
                        user=str(state.cc.get("User") or ""),
                        cwd=str(state.cc.get("WorkingDir") or "/"),
                        network=network,
                        mounts=extra,
                    ),
                    runtime=self.opt.runtime,
                    runtime_root=self.opt.runtime_root,
                    work_dir=self.opt.run_dir / "bundles",
                    output=self.say,
                    cancelled=self.cancelled,
                )
            self.remove_stubs(snap, existed)
            if code != 0:
                raise BuildError(
                    f"The command '{' '.join(args)}' returned a non-zero code: {code}", code
                )
            layer = self.layers.commit(state, snap)
        except BaseException:
            self.layers.remove(snap)
            raise
        self.commit(state, key, created_by, layer, container=cid)

    def parse_run_mount(self, value: str, ins: df.Instruction) -> dict[str, str]:
        out: dict[str, str] = {"type": "bind"}
        for part in value.split(","):
            k, eq, v = part.partition("=")
            k = k.strip().lower()
            if k in ("target", "dst", "destination"):
                k = "target"
            elif k in ("source", "src"):
                k = "source"
            elif k in ("ro", "readonly"):
                out["readonly"] = "true" if not eq else v
                continue
            elif k == "rw":
                out["readonly"] = "false" if not eq or v.lower() == "true" else "true"
                continue
            out[k] = v
        if out["type"] not in ("bind", "cache", "tmpfs"):
            raise NotImplementedYet(
                f"{ins.where()}: RUN --mount type={out['type']} is not supported (bind, cache, tmpfs are)"
            )
        if not out.get("target"):
            raise InvalidArgument(f"{ins.where()}: RUN --mount: target is required")
        return out

    def mounts_for_run(
        self,
        stack: contextlib.ExitStack,
        rootfs: str,
        specs: list[dict[str, str]],
        ins: df.Instruction,
    ) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for m in specs:
            target = (
                m["target"] if m["target"].startswith("/") else posixpath.join("/", m["target"])
            )
            kind = m["type"]
            if kind == "tmpfs":
                opts = ["nosuid", "nodev"]
                if m.get("size"):
                    opts.append(f"size={m['size']}")
                out.append(
                    {"destination": target, "type": "tmpfs", "source": "tmpfs", "options": opts}
                )
            elif kind == "cache":
                cache_id = m.get("id") or target
                d = (
                    self.opt.state_dir
                    / "cache-mounts"
                    / hashlib.sha256(cache_id.encode()).hexdigest()[:32]
                )
                d.mkdir(parents=True, exist_ok=True)
                if m.get("mode"):
                    os.chmod(d, int(m["mode"], 8))
                if m.get("uid") or m.get("gid"):
                    os.chown(d, int(m.get("uid") or 0), int(m.get("gid") or 0))
                opts = ["rbind", "rprivate"] + (["ro"] if m.get("readonly") == "true" else [])
                out.append(
                    {"destination": target, "type": "bind", "source": str(d), "options": opts}
                )
            else:
                source = m.get("source") or "/"
                if m.get("from"):
                    src_root = self.source_root(stack, m["from"], ins)
                else:
                    src_root = self.ctx.root
                host = resolve_in_root(src_root, source)
                if not os.path.lexists(host):
                    raise NotFound(f"{ins.where()}: RUN --mount: source {source!r} not found")
                ro = m.get("readonly", "true") != "false"
                opts = ["rbind", "rprivate"] + (["ro"] if ro else [])
                out.append({"destination": target, "type": "bind", "source": host, "options": opts})
        return out

    @staticmethod
    def stub_state(rootfs: str, paths: list[str]) -> dict[str, bool]:
        existed: dict[str, bool] = {}
        for p in paths:
            parts = posixpath.normpath(p).strip("/").split("/")
            for i in range(len(parts)):
                sub = "/" + "/".join(parts[: i + 1])
                if sub not in existed:
                    try:
                        existed[sub] = os.path.lexists(resolve_in_root(rootfs, sub))
                    except SkiffError:
                        existed[sub] = True
        return existed

    def remove_stubs(self, snap: str, existed: dict[str, bool]) -> None:
        """Drop mount points the runtime created in the step's rootfs (Docker keeps them in an
        init layer that never reaches the image), when the step left them empty."""
        upper = str(self.layers.snaps.upper_path(snap))
        for sub in sorted((p for p, e in existed.items() if not e), key=len, reverse=True):
            host = os.path.join(upper, sub.lstrip("/"))
            try:
                st = os.lstat(host)
            except FileNotFoundError:
                continue
            try:
                if stat.S_ISDIR(st.st_mode):
                    os.rmdir(host)  # only when empty
                elif stat.S_ISREG(st.st_mode) and st.st_size == 0:
                    os.unlink(host)
            except OSError:
                continue
            parent = posixpath.dirname(sub)
            while parent not in ("/", "") and existed.get(parent, True):
                ph = os.path.join(upper, parent.lstrip("/"))
                try:
                    if os.listdir(ph) or (
                        self.layers.snaps.whiteout_mode == "overlay"
                        and os.getxattr(ph, "trusted.overlay.opaque", follow_symlinks=False) == b"y"
                    ):
                        break
                except OSError:
                    if not os.path.isdir(ph):
                        break
                try:
                    os.rmdir(ph)  # a pure copy-up left by the stub
                except OSError:
                    break
                parent = posixpath.dirname(parent)

    # -- COPY / ADD ------------------------------------------------------------------------
    def i_copy(self, state: State, ins: df.Instruction) -> None:
        self.copy(state, ins, add=False)

    def i_add(self, state: State, ins: df.Instruction) -> None:
        self.copy(state, ins, add=True)

    def source_chain(self, ref: str, ins: df.Instruction) -> str:
        """The top chain id of the stage or image `ref` names, for --from ("" when empty)."""
        name = expand_word(ref, self._defined(self.meta), self.escape).lower()
        src: State | None = self.stages.get(name)
        if src is None and name.isdigit():
            idx = int(name)
            if idx >= len(self.by_index):
                raise InvalidArgument(
                    f"{ins.where()}: invalid from flag value {ref}: refers to current or later stage"
                )
            src = self.by_index[idx]
        if src is not None:
            return str(src.chains[-1]) if src.chains else ""
        try:
            rec = self.opt.images.resolve(name)
        except NotFound:
            raise NotFound(
                f"{ins.where()}: invalid from flag value {ref}: no stage or image named {name!r} (skiff cannot pull images yet)"
            ) from None
        return str(rec.chain_ids[-1]) if rec.chain_ids else ""

    def source_root(self, stack: contextlib.ExitStack, ref: str, ins: df.Instruction) -> str:
        """A mounted, read-only-by-convention rootfs of a stage or image, for --from."""
        chain = self.source_chain(ref, ins)
        key = f"build-src-{uuid.uuid4().hex}"
        stack.callback(self.layers.remove, key)
        return stack.enter_context(self.layers.mounted(chain, key))

    def copy(self, state: State, ins: df.Instruction, *, add: bool) -> None:
        what = ins.cmd
        env = self.env_for(state)
        words = df.words(ins, env, self.escape)
        if ins.heredocs:
            words = [w for w in df.words(ins, env, self.escape)]
        if len(words) < 2:
            raise InvalidArgument(f"{ins.where()}: {what} requires at least two arguments")
        dest, sources = words[-1], words[:-1]
        flags: dict[str, str] = {}
        for f in ins.flags:
            k, eq, v = f[2:].partition("=")
            if k not in (
                "from",
                "chown",
                "chmod",
                "link",
                "parents",
                "exclude",
                "checksum",
                "keep-git-dir",
            ):
                raise InvalidArgument(f"{ins.where()}: unknown flag: {k}")
            if k in ("parents", "exclude"):
                raise NotImplementedYet(f"{ins.where()}: {what} --{k} is not supported")
            if k in ("checksum", "keep-git-dir") and not add:
                raise InvalidArgument(f"{ins.where()}: unknown flag: {k}")
            flags[k] = expand_word(v, env, self.escape) if eq else "true"
        chmod = None
        if flags.get("chmod"):
            try:
                chmod = int(flags["chmod"], 8)
            except ValueError:
                raise InvalidArgument(
                    f"{ins.where()}: invalid chmod parameter {flags['chmod']!r}: it should be octal"
                ) from None
        wd = state.cc.get("WorkingDir") or "/"
        if not dest.startswith("/"):
            dest = posixpath.join(wd, dest) + (
                "/" if dest.endswith("/") or dest in (".", "./") else ""
            )
        heredocs = {f"<<{h.name}": h for h in ins.heredocs}
        # Files of a committed stage or image never change: their checksum is remembered by
        # (chain id, sources), so a cached COPY --from needs no mount at all.
        memo: Path | None = None
        if flags.get("from") and not heredocs:
            chain = self.source_chain(flags["from"], ins)
            memo = (
                self.cache.dir.parent
                / "sums"
                / hashlib.sha256(json.dumps([chain, sources]).encode()).hexdigest()
            )
            with contextlib.suppress(FileNotFoundError):
                created_by = self.created_by_nop(state, f"{what} {memo.read_text()} in {dest} ")
                key = json.dumps([created_by, flags.get("chown"), flags.get("chmod")])
                if self.cached(state, key):
                    return
        with contextlib.ExitStack() as stack:
            src_ctx: Context
            if flags.get("from"):
                src_ctx = Context(Path(self.source_root(stack, flags["from"], ins)), _NO_IGNORE)
            else:
                src_ctx = self.ctx
            # (kind, name, host path, entries, context-relative)
            items: list[tuple[str, str, str, list[Entry]]] = []
            tmp_dir = Path(
                stack.enter_context(
                    tempfile.TemporaryDirectory(dir=self.opt.run_dir, prefix="copy-")
                )
            )
            for src in sources:
                if src in heredocs:
                    h = heredocs[src]
                    p = tmp_dir / h.name
                    p.write_text(h.content)
                    p.chmod(0o644)
                    items.append(("file", h.name, str(p), [Entry("", str(p), os.stat(p))]))
                elif add and re.match(r"^https?://", src):
                    p, name = self.download(src, tmp_dir, ins)
                    if flags.get("checksum"):
                        _verify_checksum(p, flags["checksum"], src, ins)
                    items.append(("url", name, str(p), [Entry("", str(p), os.stat(p))]))
                elif re.match(r"^[a-z][a-z0-9+.-]*://", src) or src.startswith("git@"):
                    raise NotImplementedYet(
                        f"{ins.where()}: {what} source {src!r}: only http(s) URLs (with ADD) are supported"
                    )
                elif any(c in src for c in "*?["):
                    matches = src_ctx.glob(src)
                    for rel in matches:
                        _, host = src_ctx.resolve(rel, what)
                        items.append(
                            ("path", posixpath.basename(rel), host, list(src_ctx.walk(rel, host)))
                        )
                else:
                    rel, host = src_ctx.resolve(src, what)
                    items.append(
                        (
                            "path",
                            posixpath.basename(rel) or ".",
                            host,
                            list(src_ctx.walk(rel, host)),
                        )
                    )
            if not items:
                raise NotFound(f"{what} failed: no source files were specified")
            if len(items) > 1 and not dest.endswith("/"):
                raise InvalidArgument(
                    f"{ins.where()}: When using {what} with more than one source file, the destination must be a directory and end with a /"
                )
            sums = [f"{kind}:{name}:{checksum(entries)}" for kind, name, _, entries in items]
            digest = hashlib.sha256("\n".join(sums).encode()).hexdigest()
            if len(items) == 1:
                first = items[0][3][0]
                prefix = "dir" if stat.S_ISDIR(first.st.st_mode) else "file"
            else:
                prefix = "multi"
            if memo is not None:
                memo.parent.mkdir(parents=True, exist_ok=True)
                tmp_memo = memo.with_suffix(f".{uuid.uuid4().hex}.tmp")
                tmp_memo.write_text(f"{prefix}:{digest}")
                os.replace(tmp_memo, memo)
            created_by = self.created_by_nop(state, f"{what} {prefix}:{digest} in {dest} ")
            key = json.dumps([created_by, flags.get("chown"), flags.get("chmod")])
            if self.cached(state, key):
                return
            snap = f"build-{uuid.uuid4().hex}"
            parent = str(state.chains[-1]) if state.chains else ""
            try:
                with self.layers.mounted(parent, snap) as rootfs:
                    if flags.get("from") and not flags.get("chown"):
                        uid, gid = -1, -1  # Docker keeps the owners of files from a stage/image
                    else:
                        uid, gid = self.chown_ids(rootfs, flags.get("chown"), ins)
                    for kind, name, host, entries in items:
                        self.check_cancel()
                        self.copy_one(
                            rootfs,
                            kind,
                            name,
                            host,
                            entries,
                            dest,
                            uid,
                            gid,
                            chmod,
                            add=add and kind == "path" and not flags.get("from"),
                            ins=ins,
                        )
                layer = self.layers.commit(state, snap)
            except BaseException:
                self.layers.remove(snap)
                raise
        self.commit(state, key, created_by, layer)

    def download(self, url: str, tmp_dir: Path, ins: df.Instruction) -> tuple[Path, str]:
        import email.utils
        import urllib.error
        import urllib.parse
        import urllib.request

        name = posixpath.basename(urllib.parse.urlsplit(url).path) or "__unnamed__"
        path = tmp_dir / f"url-{uuid.uuid4().hex}"
        try:
            with urllib.request.urlopen(url, timeout=60) as resp, open(path, "wb") as out:
                shutil.copyfileobj(resp, out, 1 << 20)
                modified = resp.headers.get("Last-Modified")
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise FailedPrecondition(f"{ins.where()}: ADD failed: download {url}: {exc}") from None
        path.chmod(0o600)
        if modified:
            with contextlib.suppress(TypeError, ValueError):
                ts = email.utils.parsedate_to_datetime(modified).timestamp()
                os.utime(path, (ts, ts))
        return path, name

    @staticmethod
    def chown_ids(rootfs: str, spec: str | None, ins: df.Instruction) -> tuple[int, int]:
        if not spec:
            return 0, 0
        user, _, group = spec.partition(":")
        group = group or user

        def lookup(db: str, name: str, field_index: int) -> int:
            if name.isdigit():
                return int(name)
            try:
                with open(
                    resolve_in_root(rootfs, f"/etc/{db}"), encoding="utf-8", errors="replace"
                ) as f:
                    for line in f:
                        parts = line.rstrip("\n").split(":")
                        if len(parts) > field_index and parts[0] == name:
                            return int(parts[field_index])
            except (OSError, SkiffError):
                pass
            raise InvalidArgument(
                f"{ins.where()}: unable to convert uid/gid chown string to host mapping: can't find {'uid' if db == 'passwd' else 'gid'} for {db} {'user' if db == 'passwd' else 'group'} {name}: no such {'user' if db == 'passwd' else 'group'} in /etc/{db}"
            )

        uid = lookup("passwd", user, 2)
        if not spec.partition(":")[2] and not user.isdigit():
            # --chown=name: the group of the same name, else the user's primary group
            try:
                gid = lookup("group", user, 2)
            except InvalidArgument:
                gid = lookup("passwd", user, 3)
        else:
            gid = lookup("group", group, 2)
        return uid, gid

    def copy_one(
        self,
        rootfs: str,
        kind: str,
        name: str,
        host: str,
        entries: list[Entry],
        dest: str,
        uid: int,
        gid: int,
        chmod: int | None,
        *,
        add: bool,
        ins: df.Instruction,
    ) -> None:
        top = entries[0]
        if stat.S_ISDIR(top.st.st_mode):
            dest_dir = mkdir_all_in_root(rootfs, dest)
            _copy_tree(rootfs, dest, dest_dir, entries, uid, gid, chmod)
            return
        if add and _is_archive(host):
            dest_dir = mkdir_all_in_root(rootfs, dest)
            _extract_archive(host, dest_dir, ins)
            return
        dest_host = resolve_in_root(rootfs, dest)
        if dest.endswith("/") or (os.path.isdir(dest_host) and not os.path.islink(dest_host)):
            parent = mkdir_all_in_root(rootfs, dest)
            target = os.path.join(parent, name)
        else:
            parent = mkdir_all_in_root(rootfs, posixpath.dirname(dest.rstrip("/")) or "/")
            target = os.path.join(parent, posixpath.basename(dest.rstrip("/")))
        _copy_file(host, target, top.st, uid, gid, chmod)


_NO_IGNORE = __import__("skiff.build.dockerignore", fromlist=["Matcher"]).Matcher([])


def _replace(target: str, is_dir: bool) -> None:
    try:
        st = os.lstat(target)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        if not is_dir:
            shutil.rmtree(target)
    else:
        os.unlink(target)


def _verify_checksum(path: Path, expected: str, url: str, ins: df.Instruction) -> None:
    algo, _, want = expected.partition(":")
    if algo not in ("sha256", "sha384", "sha512") or not want:
        raise InvalidArgument(f"{ins.where()}: ADD --checksum={expected}: expected sha256:<hex>")
    h = hashlib.new(algo)
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    if h.hexdigest() != want.lower():
        raise InvalidArgument(
            f"{ins.where()}: ADD {url}: digest mismatch {algo}:{h.hexdigest()}: expected {expected}"
        )


def remove_stale(images: Any, run_dir: Path) -> list[str]:
    """After a crash: unmount and delete what unfinished builds left (their step snapshots,
    mounts and bundles). Call only when no build is running."""
    removed: list[str] = []
    if run_dir.exists():
        unmount_all(str(run_dir))  # step rootfs mounts, context tmpfs mounts
        shutil.rmtree(run_dir, ignore_errors=True)
    for info in list(images.snapshots.walk()):
        if info.name.startswith("build-") and info.kind.name != "COMMITTED":
            with contextlib.suppress(SkiffError):
                images.snapshots.remove(info.name)
                removed.append(info.name)
    return removed


def _owner(wanted: int, source: int) -> int:
    return source if wanted < 0 else wanted


def _copy_file(
    src: str, target: str, st: os.stat_result, uid: int, gid: int, chmod: int | None
) -> None:
    _replace(target, False)
    mode = stat.S_IMODE(st.st_mode)
    if stat.S_ISLNK(st.st_mode):
        os.symlink(os.readlink(src), target)
        os.lchown(target, _owner(uid, st.st_uid), _owner(gid, st.st_gid))
        os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)
        return
    with open(src, "rb") as fin:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "wb") as fout:
            shutil.copyfileobj(fin, fout, 1 << 20)
    os.chown(target, _owner(uid, st.st_uid), _owner(gid, st.st_gid), follow_symlinks=False)
    os.chmod(target, chmod if chmod is not None else mode)
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)


def _copy_tree(
    rootfs: str,
    dest: str,
    dest_dir: str,
    entries: list[Entry],
    uid: int,
    gid: int,
    chmod: int | None,
) -> None:
    dirs: list[tuple[str, os.stat_result]] = [(dest_dir, entries[0].st)]
    for e in entries[1:]:
        parent_rel = posixpath.dirname(e.rel)
        parent = (
            resolve_in_root(rootfs, posixpath.join(dest, parent_rel)) if parent_rel else dest_dir
        )
        target = os.path.join(parent, posixpath.basename(e.rel))
        if stat.S_ISDIR(e.st.st_mode):
            _replace(target, True)
            if not os.path.isdir(target):
                os.mkdir(target, 0o700)
            dirs.append((target, e.st))
        elif stat.S_ISREG(e.st.st_mode) or stat.S_ISLNK(e.st.st_mode):
            _copy_file(e.path, target, e.st, uid, gid, chmod)
    for path, st in reversed(dirs):
        os.chown(path, _owner(uid, st.st_uid), _owner(gid, st.st_gid))
        os.chmod(path, chmod if chmod is not None else stat.S_IMODE(st.st_mode))
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def _is_archive(path: str) -> bool:
    import tarfile

    try:
        with open(path, "rb") as f:
            head = f.read(6)
    except OSError:
        return False
    if head[:2] == b"\x1f\x8b" or head[:3] == b"BZh" or head[:6] == b"\xfd7zXZ\x00":
        return True
    try:
        return tarfile.is_tarfile(path)
    except OSError:
        return False


def _extract_archive(path: str, dest_dir: str, ins: df.Instruction) -> None:
    """ADD's auto-extraction: like a tar context, never outside `dest_dir`, ownership kept."""
    import tarfile

    from skiff.build.context import decompressed

    real = os.path.realpath(dest_dir)
    dirs: list[tuple[str, tarfile.TarInfo]] = []
    try:
        with open(path, "rb") as raw, tarfile.open(fileobj=decompressed(raw), mode="r|") as tar:
            for ti in tar:
                rel = posixpath.normpath("/" + ti.name).lstrip("/")
                if not rel:
                    continue
                parent = resolve_in_root(real, posixpath.dirname(rel) or "/")
                os.makedirs(parent, exist_ok=True)
                target = os.path.join(parent, posixpath.basename(rel))
                if not os.path.realpath(parent).startswith(real):
                    raise InvalidArgument(
                        f"{ins.where()}: ADD {path}: entry {ti.name!r} leaves the destination"
                    )
                _replace(target, ti.isdir())
                if ti.isdir():
                    if not os.path.isdir(target):
                        os.mkdir(target, 0o700)
                    dirs.append((target, ti))
                    continue
                if ti.isreg():
                    f = tar.extractfile(ti)
                    assert f is not None
                    fd = os.open(
                        target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600
                    )
                    with os.fdopen(fd, "wb") as out:
                        shutil.copyfileobj(f, out, 1 << 20)
                    os.chmod(target, ti.mode & 0o7777)
                elif ti.issym():
                    os.symlink(ti.linkname, target)
                elif ti.islnk():
                    link_rel = posixpath.normpath("/" + ti.linkname).lstrip("/")
                    os.link(resolve_in_root(real, link_rel), target)
                else:
                    continue
                os.lchown(target, ti.uid, ti.gid)
                os.utime(target, (ti.mtime, ti.mtime), follow_symlinks=False)
    except (tarfile.TarError, EOFError) as exc:
        raise InvalidArgument(f"{ins.where()}: ADD {posixpath.basename(path)}: {exc}") from None
    for target, ti in reversed(dirs):
        os.chown(target, ti.uid, ti.gid)
        os.chmod(target, ti.mode & 0o7777)
        os.utime(target, (ti.mtime, ti.mtime))
