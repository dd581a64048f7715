"""skiff: a Docker-compatible container engine.

The package is layered; lower layers never import higher ones (see STYLE.md and the
import-linter contract in pyproject.toml):

    types, errors -> linux -> {content, snapshots, runtime, network, volumes}
    -> {images, distribution} -> engine -> build -> api -> daemon

`client` and `cli` sit beside the stack and never import the engine.
"""

__version__ = "0.1.0"
