"""The `skiff` command, one module per verb group. Talks to skiffd only through the client."""
