"""What the runtime prints and writes validates against the OCI runtime-spec JSON Schemas."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from skiff.runtime import state as st
from skiff.runtime.specgen import default_spec


def _validator(reference_dir: Path, name: str) -> Any:
    jsonschema = pytest.importorskip("jsonschema")
    referencing = pytest.importorskip("referencing")
    from referencing.jsonschema import DRAFT4

    folder = reference_dir / "oci-runtime-spec-schema"
    resources = [
        (
            path.name,
            referencing.Resource.from_contents(
                json.loads(path.read_text()), default_specification=DRAFT4
            ),
        )
        for path in folder.glob("*.json")
    ]
    registry = referencing.Registry().with_resources(resources)
    schema = json.loads((folder / name).read_text())
    return jsonschema.Draft4Validator(schema, registry=registry)


def test_default_spec_validates(reference_dir: Path) -> None:
    _validator(reference_dir, "config-schema.json").validate(default_spec())


def test_features_validate(reference_dir: Path) -> None:
    from skiff.runtime.features import features

    _validator(reference_dir, "features-schema.json").validate(features())


def test_state_validates(reference_dir: Path, tmp_path: Path) -> None:
    s = st.ContainerState(
        str(tmp_path),
        "c1",
        bundle="/b",
        rootfs="/b/rootfs",
        spec={"ociVersion": "1.2.0"},
        annotations={"a": "b"},
    )
    validator = _validator(reference_dir, "state-schema.json")
    for status in (st.CREATING, st.CREATED, st.RUNNING, st.STOPPED):
        validator.validate(s.oci_state(status))


def test_schema_check_can_fail(reference_dir: Path, tmp_path: Path) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    s = st.ContainerState(
        str(tmp_path), "c1", bundle="/b", rootfs="/b/rootfs", spec={"ociVersion": "1.2.0"}
    )
    bad = s.oci_state(st.RUNNING)
    bad["status"] = "exploded"
    with pytest.raises(jsonschema.ValidationError):
        _validator(reference_dir, "state-schema.json").validate(bad)
    spec = default_spec()
    spec["linux"]["namespaces"].append({"type": "foo"})
    with pytest.raises(jsonschema.ValidationError):
        _validator(reference_dir, "config-schema.json").validate(spec)
