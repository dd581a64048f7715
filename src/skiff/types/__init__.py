"""Pure data, no I/O: digests, descriptors, manifests and indexes, image configs, image references, platforms, the OCI runtime spec."""
