"""Volumes: the local volume driver, bind and tmpfs mounts."""
