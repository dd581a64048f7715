"""`features`: what this runtime supports, in the OCI features-schema shape."""

from __future__ import annotations

from skiff.runtime.config import HOOK_KINDS
from skiff.runtime.state import OCI_VERSION

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

MOUNT_OPTIONS = [
    "async", "atime", "bind", "defaults", "dev", "diratime", "dirsync", "exec", "lazytime",
    "mand", "noatime", "nodev", "nodiratime", "noexec", "nolazytime", "nomand", "norelatime",
    "nostrictatime", "nosuid", "nosymfollow", "private", "rbind", "relatime", "remount", "ro",
    "rprivate", "rshared", "rslave", "runbindable", "rw", "shared", "silent", "slave",
    "strictatime", "suid", "symfollow", "sync", "unbindable",
]  # fmt: skip


def features() -> dict[str, Any]:
    from skiff.linux import capabilities, namespaces

    try:
        from skiff.linux import seccomp

        seccomp_features: dict[str, Any] = seccomp.features()
    except ImportError:
        seccomp_features = {"enabled": False}
    return {
        "ociVersionMin": "1.0.0",
        "ociVersionMax": OCI_VERSION,
        "hooks": list(HOOK_KINDS),
        "mountOptions": MOUNT_OPTIONS,
        "linux": {
            "namespaces": sorted(namespaces.supported()),
            "capabilities": list(capabilities.ALL_CAPS),
            "cgroup": {"v1": True, "v2": True, "systemd": False, "systemdUser": False},
            "seccomp": seccomp_features,
            "apparmor": {"enabled": False},
            "selinux": {"enabled": False},
            "intelRdt": {"enabled": False},
        },
        "annotations": {"org.skiff.runtime.version": "0.1.0"},
    }
