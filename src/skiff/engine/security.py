"""The daemon-wide security defaults (dockerd's `seccomp-profile`, `no-new-privileges`,
`userns-remap`) and what they mean for one container: its seccomp section, its id map.

`SecurityDefaults` is a value the daemon builds from its configuration and hands to the engine;
`seccomp_for()` and `idmap_for()` combine it with a container's parsed --security-opt and
--userns. The builtin profile's conversion is cached per capability set: `docker run` pays for
it once per distinct set, not once per container.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from skiff.engine import oci
from skiff.errors import InvalidArgument

BUILTIN = "builtin"
UNCONFINED = "unconfined"


@dataclass(frozen=True)
class SecurityDefaults:
    """seccomp_profile: "builtin", "unconfined", or the JSON text of a Docker-format profile."""

    seccomp_profile: str = BUILTIN
    no_new_privileges: bool = False
    idmap: oci.IdMap | None = None
    userns_remap: str = ""  # the configured value, for /info

    def security_options(self, cgroupns: bool) -> list[str]:
        """/info's SecurityOptions, in dockerd's "name=…,key=value" form."""
        out = []
        if self.seccomp_profile != UNCONFINED:
            profile = "builtin" if self.seccomp_profile == BUILTIN else "custom"
            out.append(f"name=seccomp,profile={profile}")
        if self.idmap is not None:
            out.append("name=userns")
        if cgroupns:
            out.append("name=cgroupns")
        if self.no_new_privileges:
            out.append("name=no-new-privileges")
        return out


def load_seccomp_profile(value: str | None) -> str:
    """The daemon's `seccomp-profile` setting: a file path, "unconfined" or "builtin"/empty."""
    if not value or value == BUILTIN:
        return BUILTIN
    if value == UNCONFINED:
        return UNCONFINED
    try:
        with open(value) as f:
            text = f.read()
    except OSError as err:
        raise InvalidArgument(f"seccomp-profile {value}: {err.strerror}") from None
    try:
        profile = json.loads(text)
    except ValueError as err:
        raise InvalidArgument(f"seccomp-profile {value}: not valid JSON: {err}") from None
    if not isinstance(profile, dict) or "defaultAction" not in profile:
        raise InvalidArgument(f"seccomp-profile {value}: not a seccomp profile (no defaultAction)")
    return text


@functools.lru_cache(maxsize=64)
def _builtin_for(caps: frozenset[str], arch: str) -> str:
    from skiff.engine import seccomp_default
    from skiff.linux.seccomp_docker import docker_profile_to_oci

    return json.dumps(docker_profile_to_oci(seccomp_default.profile(), caps, arch))


def seccomp_for(
    opts: oci.SecurityOptions, caps: Collection[str], defaults: SecurityDefaults
) -> dict[str, Any] | None:
    """The OCI linux.seccomp of a container, or None for no filter (privileged, unconfined)."""
    from skiff.linux.seccomp_docker import docker_profile_to_oci

    arch = os.uname().machine
    text = opts.seccomp
    if text == UNCONFINED:
        return None
    if text == "default":
        text = defaults.seccomp_profile
        if text == UNCONFINED:
            return None
        if text == BUILTIN:
            section: dict[str, Any] = json.loads(_builtin_for(frozenset(caps), arch))
            return section
    profile = json.loads(text)
    if not isinstance(profile, Mapping):
        raise InvalidArgument("seccomp profile: must be a JSON object")
    try:
        return docker_profile_to_oci(profile, caps, arch)
    except InvalidArgument as err:
        raise err.wrap("--security-opt seccomp") from None


def idmap_for(host_config: Mapping[str, Any], defaults: SecurityDefaults) -> oci.IdMap | None:
    """The container's user namespace: the daemon's remap unless `--userns=host`."""
    mode = host_config.get("UsernsMode") or ""
    if mode == "host":
        return None
    if mode:
        raise InvalidArgument(f"invalid --userns {mode!r}: only 'host' is supported")
    return defaults.idmap
