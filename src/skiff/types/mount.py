"""A mount as a value: what snapshotters return and runtimes and engines perform.

Snapshotters never mount anything; they hand back `Mount`s. The code that owns the target
(the engine for a container's rootfs, the runtime for config.json mounts) performs them with
`skiff.linux.mount.mount_all`.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Mount:
    """One mount(2): `type` ("overlay", "bind", "tmpfs", …), `source`, and fstab-style options.

    `target` is relative to where the mounts are applied ("" = the target itself).
    """

    type: str
    source: str
    options: tuple[str, ...] = field(default_factory=tuple)
    target: str = ""

    def to_oci(self, destination: str) -> dict[str, object]:
        """This mount as an entry of an OCI config.json `mounts` list."""
        return {
            "destination": destination,
            "type": self.type,
            "source": self.source,
            "options": list(self.options),
        }
