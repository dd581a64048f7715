"""Dockerfile-style `--change` instructions applied to an image config's `config` object
(`docker import --change`, `docker commit --change`)."""

from __future__ import annotations

import json
import shlex
from typing import Any

from skiff.errors import InvalidArgument, NotImplementedYet

ALLOWED = (
    "CMD",
    "ENTRYPOINT",
    "ENV",
    "EXPOSE",
    "LABEL",
    "ONBUILD",
    "STOPSIGNAL",
    "USER",
    "VOLUME",
    "WORKDIR",
)


def _json_or_shell(instr: str, rest: str) -> list[str]:
    text = rest.strip()
    if text.startswith("["):
        try:
            value = json.loads(text)
        except ValueError:
            value = None
        if isinstance(value, list) and all(isinstance(x, str) for x in value):
            return value
    if not text:
        raise InvalidArgument(f"change {instr}: needs an argument")
    return ["/bin/sh", "-c", text]


def _pairs(instr: str, rest: str) -> list[tuple[str, str]]:
    try:
        words = shlex.split(rest)
    except ValueError as e:
        raise InvalidArgument(f"change {instr} {rest}: {e}")
    if not words:
        raise InvalidArgument(f"change {instr}: needs at least one argument")
    if "=" not in words[0]:
        # legacy form: `ENV KEY value with spaces`
        key, _, value = rest.strip().partition(" ")
        return [(key, value.strip())]
    out = []
    for w in words:
        key, sep, value = w.partition("=")
        if not sep or not key:
            raise InvalidArgument(f"change {instr}: {w!r} is not KEY=value")
        out.append((key, value))
    return out


def apply_changes(config: dict[str, Any], changes: list[str]) -> dict[str, Any]:
    """A copy of `config` (the image config's `config` object) with `changes` applied."""
    cfg: dict[str, Any] = json.loads(json.dumps(config or {}))
    for line in changes:
        for raw in line.split("\n"):
            raw = raw.strip()
            if not raw:
                continue
            instr, _, rest = raw.partition(" ")
            instr = instr.upper()
            if instr == "HEALTHCHECK":
                raise NotImplementedYet("change HEALTHCHECK: not supported by skiff yet")
            if instr not in ALLOWED:
                raise InvalidArgument(f"{instr} is not a valid change command")
            if instr == "CMD":
                cfg["Cmd"] = _json_or_shell(instr, rest)
            elif instr == "ENTRYPOINT":
                cfg["Entrypoint"] = _json_or_shell(instr, rest)
            elif instr == "ENV":
                env = list(cfg.get("Env") or [])
                for key, value in _pairs(instr, rest):
                    env = [e for e in env if e.partition("=")[0] != key]
                    env.append(f"{key}={value}")
                cfg["Env"] = env
            elif instr == "LABEL":
                labels = dict(cfg.get("Labels") or {})
                for key, value in _pairs(instr, rest):
                    labels[key] = value
                cfg["Labels"] = labels
            elif instr == "EXPOSE":
                ports = dict(cfg.get("ExposedPorts") or {})
                for p in rest.split():
                    port, _, proto = p.partition("/")
                    if not port.replace("-", "").isdigit():
                        raise InvalidArgument(f"change EXPOSE: invalid port {p!r}")
                    ports[f"{port}/{proto or 'tcp'}"] = {}
                cfg["ExposedPorts"] = ports
            elif instr == "VOLUME":
                vols = dict(cfg.get("Volumes") or {})
                text = rest.strip()
                items = json.loads(text) if text.startswith("[") else text.split()
                for v in items:
                    vols[str(v)] = {}
                cfg["Volumes"] = vols
            elif instr == "USER":
                cfg["User"] = rest.strip()
            elif instr == "WORKDIR":
                wd = rest.strip()
                if not wd.startswith("/"):
                    wd = (cfg.get("WorkingDir") or "/").rstrip("/") + "/" + wd
                cfg["WorkingDir"] = wd
            elif instr == "STOPSIGNAL":
                cfg["StopSignal"] = rest.strip()
            elif instr == "ONBUILD":
                cfg["OnBuild"] = [*list(cfg.get("OnBuild") or []), rest.strip()]
    return cfg
