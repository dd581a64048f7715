"""Snapshotters (overlay, native copy). They return mounts and never mount anything themselves."""
