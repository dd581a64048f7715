"""config.json validation: the first bad field is named, with its JSON path."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from skiff.errors import InvalidArgument, NotFound
from skiff.runtime import config
from skiff.runtime.specgen import default_spec


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    (tmp_path / "rootfs").mkdir()
    return tmp_path


def _write(bundle: Path, spec: Any) -> None:
    (bundle / "config.json").write_text(json.dumps(spec) if not isinstance(spec, str) else spec)


def test_default_spec_is_valid(bundle: Path) -> None:
    _write(bundle, default_spec())
    spec = config.load(str(bundle))
    assert config.rootfs_path(spec, str(bundle)) == str(bundle / "rootfs")


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda s: s.pop("ociVersion"), "config.json: ociVersion: required field is missing"),
        (lambda s: s.update(ociVersion="2.0.0"), "ociVersion: unsupported version"),
        (lambda s: s["process"].pop("args"), "process.args: required field is missing"),
        (lambda s: s["process"].update(cwd="relative"), "process.cwd: must be an absolute path"),
        (lambda s: s["process"]["user"].pop("uid"), "process.user.uid: required field is missing"),
        (lambda s: s["process"]["user"].update(gid=True), "process.user.gid: must be integer, not boolean"),
        (lambda s: s["process"].update(env=["NOEQUALS"]), "process.env[0]: must be KEY=VALUE"),
        (lambda s: s["process"]["rlimits"].append({"type": "RLIMIT_BOGUS", "soft": 1, "hard": 1}), "process.rlimits[1].type: unknown rlimit"),
        (lambda s: s["process"]["rlimits"][0].update(soft=2048), "soft limit 2048 exceeds hard limit 1024"),
        (lambda s: s["linux"]["namespaces"].append({"type": "foo"}), "linux.namespaces[6].type: unknown namespace type 'foo'"),
        (lambda s: s["linux"]["namespaces"].append({"type": "pid"}), "linux.namespaces[6].type: namespace 'pid' listed twice"),
        (lambda s: s["linux"]["namespaces"].append({"type": "user"}), "linux.uidMappings: a new user namespace needs uidMappings"),
        (lambda s: s["mounts"].append({"type": "tmpfs"}), "mounts[7].destination: required field is missing"),
        (lambda s: s.update(hooks={"prestart": [{"path": "rel"}]}), "hooks.prestart[0].path: must be an absolute path"),
        (lambda s: s.update(hooks={"bogus": []}), "hooks.bogus: unknown hook kind"),
        (lambda s: s["linux"].update(timeOffsets={"boottime": {"secs": 1}}), "linux.timeOffsets: time offsets need a time namespace"),
        (lambda s: s["linux"].update(namespaces=[{"type": "mount"}]), "hostname: setting the hostname needs a uts namespace"),
    ],
)  # fmt: skip
def test_invalid_fields_are_named(bundle: Path, mutate: Any, message: str) -> None:
    spec = copy.deepcopy(default_spec())
    mutate(spec)
    _write(bundle, spec)
    with pytest.raises(InvalidArgument) as err:
        config.load(str(bundle))
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_malformed_and_missing(bundle: Path, tmp_path: Path) -> None:
    _write(bundle, '{"ociVersion": ')
    with pytest.raises(InvalidArgument, match=r"config\.json: malformed JSON"):
        config.load(str(bundle))
    _write(bundle, "[]")
    with pytest.raises(InvalidArgument, match="top level must be an object"):
        config.load(str(bundle))
    with pytest.raises(NotFound, match="no such file"):
        config.load(str(tmp_path / "nowhere"))


def test_missing_rootfs(bundle: Path) -> None:
    spec = default_spec()
    spec["root"]["path"] = "missing"
    _write(bundle, spec)
    with pytest.raises(NotFound, match=r"root\.path: rootfs .*missing does not exist"):
        config.load(str(bundle))
