"""The content-addressed blob store: ingest to a temp file, verify size and digest, rename into place."""

from skiff.content.store import ContentStore, Writer

__all__ = ["ContentStore", "Writer"]
