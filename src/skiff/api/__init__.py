"""The Docker Engine API server: one module per resource, hijacked streams, errors mapped to HTTP statuses."""
