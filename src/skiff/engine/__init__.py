"""Use cases with no HTTP: containers, images, networks, volumes, events, supervision."""
