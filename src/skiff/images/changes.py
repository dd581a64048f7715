"""Dockerfile-style `--change` instructions applied to an image config's `config` object
(`docker import --change`, `docker commit --change`)."""

from __future__ import annotations

import json
import re
import shlex
from typing import Any

from skiff.errors import InvalidArgument

ALLOWED = (
    "CMD",
    "ENTRYPOINT",
    "ENV",
    "EXPOSE",
    "HEALTHCHECK",
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


_DURATION_UNITS = {
    "ns": 1,
    "us": 1000,
    "µs": 1000,
    "ms": 10**6,
    "s": 10**9,
    "m": 60 * 10**9,
    "h": 3600 * 10**9,
}


def parse_go_duration(text: str, what: str) -> int:
    """A Go duration ("30s", "1m30s", "500ms", "0") → nanoseconds."""
    if text == "0":
        return 0
    total = 0.0
    pos = 0
    for m in re.finditer(r"(\d+(?:\.\d*)?)(ns|us|µs|ms|s|m|h)", text):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _DURATION_UNITS[m.group(2)]
        pos = m.end()
    if pos != len(text) or pos == 0:
        raise InvalidArgument(f"{what}: time: invalid duration {text!r}")
    return int(total)


_HEALTH_DURATIONS = {
    "interval": "Interval",
    "timeout": "Timeout",
    "start-period": "StartPeriod",
    "start-interval": "StartInterval",
}


def parse_healthcheck(rest: str, where: str = "HEALTHCHECK") -> dict[str, Any]:
    """The `Healthcheck` object of `HEALTHCHECK [--interval=… --timeout=… --start-period=…
    --start-interval=… --retries=…] CMD command` or `HEALTHCHECK NONE`, as Docker's Dockerfile
    frontend makes it: `CMD ["a", "b"]` → Test ["CMD", "a", "b"], `CMD a b` → ["CMD-SHELL",
    "a b"]; durations in nanoseconds; zero values left out."""
    text = rest.strip()
    flags: list[tuple[str, str]] = []
    while text.startswith("--"):
        word, _, text = text.partition(" ")
        text = text.lstrip()
        name, sep, value = word[2:].partition("=")
        if not sep:
            raise InvalidArgument(f"{where}: Missing a value on flag: --{name}")
        flags.append((name, value))
    kind, _, command = text.partition(" ")
    kind = kind.upper()
    command = command.strip()
    if kind == "NONE":
        if command or flags:
            raise InvalidArgument(f"{where}: HEALTHCHECK NONE takes no arguments")
        return {"Test": ["NONE"]}
    if kind != "CMD":
        raise InvalidArgument(f"{where}: Unknown type {kind!r} in HEALTHCHECK (try CMD)")
    if not command:
        raise InvalidArgument(f"{where}: Missing command after HEALTHCHECK CMD")
    test: list[str] = ["CMD-SHELL", command]
    if command.startswith("["):
        try:
            parsed: Any = json.loads(command)
        except ValueError:
            parsed = None
        if isinstance(parsed, list) and all(isinstance(x, str) for x in parsed):
            test = ["CMD", *parsed]
    hc: dict[str, Any] = {"Test": test}
    for name, value in flags:
        if name in _HEALTH_DURATIONS:
            ns = parse_go_duration(value, f"{where}: --{name}")
            if 0 < ns < 10**6:
                raise InvalidArgument(f'{where}: Interval "{name}" cannot be less than 1ms')
            if ns:
                hc[_HEALTH_DURATIONS[name]] = ns
        elif name == "retries":
            try:
                retries = int(value)
            except ValueError:
                raise InvalidArgument(f"{where}: --retries: invalid number {value!r}") from None
            if retries < 0:
                raise InvalidArgument(f"{where}: --retries cannot be negative ({retries})")
            if retries:
                hc["Retries"] = retries
        else:
            raise InvalidArgument(f"{where}: unknown flag: --{name}")
    return hc


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
            elif instr == "HEALTHCHECK":
                cfg["Healthcheck"] = parse_healthcheck(rest, f"change {raw!r}")
            elif instr == "ONBUILD":
                cfg["OnBuild"] = [*list(cfg.get("OnBuild") or []), rest.strip()]
    return cfg
