"""The image store: references to manifests, unpacking layers (whiteouts), save/load, import/export, commit, bootstrap images."""
