"""The OCI runtime: config.json -> process steps -> rootfs -> cgroups -> exec; container state; the runc-compatible CLI."""
