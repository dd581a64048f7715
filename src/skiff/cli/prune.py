"""What the prune verbs (container, image, network, volume, system prune) share at run time:
the confirmation prompt and the "Deleted …" / "Total reclaimed space" report. Their flag table
is `flags.prune_command`, so that declaring a verb does not import this module."""

from __future__ import annotations

import sys

from skiff.cli.output import human_size

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from skiff.cli.flags import Options


def confirm(question: str) -> bool:
    sys.stdout.write(question + " [y/N] ")
    sys.stdout.flush()
    answer = sys.stdin.readline().strip().lower()
    return answer in ("y", "yes")


def confirmed(opts: Options, warning: str) -> bool:
    """True when --force was given or the user answers yes to `warning`."""
    return bool(opts.force) or confirm(warning + "\nAre you sure you want to continue?")


def print_deleted(title: str, items: list[str] | None, *, blank_line: bool = True) -> None:
    """`title` and one item a line, then a blank line; nothing when nothing was deleted."""
    if items:
        print(title)
        for item in items:
            print(item)
        if blank_line:
            print()


def print_deleted_images(entries: list[dict[str, Any]] | None) -> None:
    """The ImagesDeleted entries as "untagged: …" / "deleted: …" lines (empty fields left out,
    as docker)."""
    if entries:
        print("Deleted Images:")
        for entry in entries:
            for key, value in entry.items():
                if value:
                    print(f"{key.lower()}: {value}")
        print()


def print_reclaimed(space: int) -> None:
    print(f"Total reclaimed space: {human_size(space)}")
