"""Image references (`[domain/]path[:tag][@digest]`), parsed and normalised exactly as Docker does.

The grammar and the normalisation rules are those of distribution/reference, which the Docker
CLI and daemon share: a name without a domain belongs to `docker.io`, a one-component name on
`docker.io` lives under `library/`, `index.docker.io` is `docker.io`, and a reference with
neither tag nor digest means `:latest`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from skiff.errors import InvalidArgument
from skiff.types.digest import Digest

DEFAULT_DOMAIN = "docker.io"
LEGACY_DEFAULT_DOMAIN = "index.docker.io"
OFFICIAL_REPO_PREFIX = "library/"
DEFAULT_TAG = "latest"
NAME_TOTAL_LENGTH_MAX = 255

_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|[-]+)"
_PATH_COMPONENT = _ALNUM + r"(?:" + _SEPARATOR + _ALNUM + r")*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN_NAME = _DOMAIN_COMPONENT + r"(?:\." + _DOMAIN_COMPONENT + r")*"
_IPV6 = r"\[(?:[a-fA-F0-9:]+)\]"
_DOMAIN = r"(?:" + _DOMAIN_NAME + r"|" + _IPV6 + r")(?::[0-9]+)?"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
_REMOTE_NAME = _PATH_COMPONENT + r"(?:/" + _PATH_COMPONENT + r")*"
_REFERENCE = re.compile(
    r"^((?:" + _DOMAIN + r"/)?" + _REMOTE_NAME + r")(?::(" + _TAG + r"))?(?:@(" + _DIGEST + r"))?$",
    re.ASCII,
)
_TAG_ONLY = re.compile(r"^" + _TAG + r"$", re.ASCII)
_IDENTIFIER = re.compile(r"^[a-f0-9]{64}$")
_DOMAIN_ONLY = re.compile(r"^" + _DOMAIN + r"$", re.ASCII)


@dataclass(frozen=True, slots=True)
class Reference:
    """A normalised reference: `domain/path[:tag][@digest]`. At least one of tag, digest is set."""

    domain: str
    path: str
    tag: str | None = None
    digest: Digest | None = None

    @property
    def name(self) -> str:
        """`domain/path`, the repository name."""
        return f"{self.domain}/{self.path}"

    def familiar_name(self) -> str:
        """The short form Docker shows: `busybox:latest`, `user/app@sha256:…`, `host:5000/a:b`."""
        return self.familiar_repository() + self._suffix()

    def familiar_repository(self) -> str:
        """The repository in Docker's short form: `busybox`, `user/app`, `localhost:5000/a`."""
        if self.domain == DEFAULT_DOMAIN:
            path = self.path
            if (
                path.startswith(OFFICIAL_REPO_PREFIX)
                and "/" not in path[len(OFFICIAL_REPO_PREFIX) :]
            ):
                path = path[len(OFFICIAL_REPO_PREFIX) :]
            return path
        return self.name

    def with_tag(self, tag: str) -> Reference:
        if not _TAG_ONLY.match(tag):
            raise InvalidArgument(f"invalid tag format: {tag!r}")
        return Reference(self.domain, self.path, tag, None)

    def with_digest(self, digest: Digest) -> Reference:
        return Reference(self.domain, self.path, None, digest)

    def _suffix(self) -> str:
        out = ""
        if self.tag is not None:
            out += ":" + self.tag
        if self.digest is not None:
            out += "@" + str(self.digest)
        return out

    def __str__(self) -> str:
        return self.name + self._suffix()


def _split_domain(name: str) -> tuple[str, str]:
    i = name.find("/")
    first = name[:i] if i >= 0 else ""
    if i == -1 or (
        not any(c in first for c in ".:") and first != "localhost" and first.lower() == first
    ):
        domain, remainder = DEFAULT_DOMAIN, name
    else:
        domain, remainder = first, name[i + 1 :]
    if domain == LEGACY_DEFAULT_DOMAIN:
        domain = DEFAULT_DOMAIN
    if domain == DEFAULT_DOMAIN and "/" not in remainder:
        remainder = OFFICIAL_REPO_PREFIX + remainder
    return domain, remainder


def parse_reference(text: str, *, default_tag: bool = True) -> Reference:
    """Parse and normalise `text` as Docker does (ParseDockerRef).

    `busybox` → `docker.io/library/busybox:latest`. With `default_tag=False` a reference without
    tag and digest keeps neither (Docker's ParseNormalizedNamed; `tag` is then None).
    Raises InvalidArgument with Docker's reason.
    """
    if _IDENTIFIER.match(text):
        raise InvalidArgument(
            f"invalid repository name ({text}), cannot specify 64-byte hexadecimal strings"
        )
    domain, remainder = _split_domain(text)
    tag_sep = remainder.find(":")
    remote = remainder[:tag_sep] if tag_sep > -1 else remainder
    if remote.lower() != remote:
        raise InvalidArgument(
            f"invalid reference format: repository name ({remote}) must be lowercase"
        )
    full = domain + "/" + remainder
    m = _REFERENCE.match(full)
    if m is None:
        if _REFERENCE.match(full.lower()):
            raise InvalidArgument("invalid reference format: repository name must be lowercase")
        raise InvalidArgument("invalid reference format")
    name, tag, digest_text = m.group(1), m.group(2), m.group(3)
    if len(name) > NAME_TOTAL_LENGTH_MAX:
        raise InvalidArgument(
            f"invalid reference format: repository name must not be more than {NAME_TOTAL_LENGTH_MAX} characters"
        )
    digest: Digest | None = None
    if digest_text is not None:
        algorithm, _, _hex = digest_text.partition(":")
        if algorithm not in ("sha256", "sha512"):
            raise InvalidArgument(
                f"invalid reference format: unsupported digest algorithm {algorithm!r}"
            )
        try:
            digest = Digest.parse(digest_text)
        except InvalidArgument:
            raise InvalidArgument(
                f"invalid reference format: invalid checksum digest length in {digest_text!r}"
            )
    domain_part, _, path = name.partition("/")
    if tag is None and digest is None and default_tag:
        tag = DEFAULT_TAG
    return Reference(domain_part, path, tag, digest)


def is_image_id(text: str) -> bool:
    """True for a full image id, with or without its `sha256:` prefix."""
    return bool(_IDENTIFIER.match(text.removeprefix("sha256:")))


def valid_tag(tag: str) -> bool:
    return bool(_TAG_ONLY.match(tag))


def valid_domain(domain: str) -> bool:
    return bool(_DOMAIN_ONLY.match(domain))


__all__ = ["Reference", "parse_reference", "is_image_id", "valid_tag", "valid_domain"]
