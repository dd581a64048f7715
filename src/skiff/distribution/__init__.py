"""The OCI distribution protocol: the registry client (pull, push, auth) and the registry server."""
