"""Docker-style (pflag) flag parsing, help text and the data shell completion is built from.

Semantics follow the docker CLI: `--name value`, `--name=value`, `-n value`, `-nvalue`,
combined short booleans (`-it`, `-dit`), `--flag=false`, `--` ends flags. A command that takes
another command (run, create, exec) stops at its first positional argument. A flag error is a
`FlagError` (exit 125, as docker); a wrong argument count is a `UsageError` (exit 1).
"""

from __future__ import annotations

from skiff.errors import InvalidArgument

# No dataclasses or typing at run time: this module is on every command's start-up path.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

BOOL, STR, LIST, INT, FLOAT = "bool", "string", "list", "int", "float"


class FlagError(InvalidArgument):
    """A flag docker would reject: unknown, missing value, bad value. Exit status 125."""


class UsageError(InvalidArgument):
    """Wrong number of arguments. Exit status 1, as docker."""


class HelpRequested(Exception):
    def __init__(self, command: Command) -> None:
        super().__init__(command.name)
        self.command = command


class Flag:
    """One flag: long name, optional one-letter short name, kind (bool/string/list/int/float).

    `complete` tells shell completion what a value is: "container", "image", "network",
    "volume", "file", or "" (nothing to offer).
    """

    __slots__ = ("complete", "default", "help", "hidden", "kind", "long", "metavar", "short")

    def __init__(
        self,
        long: str,
        short: str = "",
        kind: str = BOOL,
        default: Any = None,
        help: str = "",
        metavar: str = "",
        hidden: bool = False,
        complete: str = "",
    ) -> None:
        self.long = long
        self.short = short
        self.kind = kind
        self.default = default
        self.help = help
        self.metavar = metavar
        self.hidden = hidden
        self.complete = complete

    @property
    def dest(self) -> str:
        return self.long.replace("-", "_")

    def initial(self) -> Any:
        if self.kind == LIST:
            return list(self.default or [])
        if self.kind == BOOL:
            return bool(self.default)
        return self.default

    def spelled(self) -> str:
        return f"-{self.short}, --{self.long}" if self.short else f"--{self.long}"


class Options:
    """Parsed flag values as attributes (`opts.no_trunc`); `was_set(name)` tells explicit use."""

    def __init__(self, values: dict[str, Any], explicit: set[str]) -> None:
        self.__dict__.update(values)
        self._explicit = explicit

    def was_set(self, long: str) -> bool:
        return long in self._explicit

    def __getattr__(self, name: str) -> Any:  # only reached for names not set
        raise AttributeError(f"no flag named {name!r}")


class Command:
    """A verb's flag table, argument count, help text and example."""

    def __init__(
        self,
        name: str,
        summary: str,
        usage: str = "[OPTIONS]",
        flags: list[Flag] | None = None,
        example: str = "",
        interspersed: bool = True,
        min_args: int = 0,
        max_args: int | None = None,
        aliases: tuple[str, ...] = (),
        args_complete: str = "",
    ) -> None:
        self.name = name
        self.summary = summary
        self.usage = usage
        self.flags: list[Flag] = list(flags or [])
        self.example = example
        self.interspersed = interspersed
        self.min_args = min_args
        self.max_args = max_args
        self.aliases = aliases
        self.args_complete = args_complete  # completion kind for positional arguments

    def _find_long(self, name: str) -> Flag | None:
        for f in self.flags:
            if f.long == name:
                return f
        return None

    def _find_short(self, ch: str) -> Flag | None:
        for f in self.flags:
            if f.short == ch:
                return f
        return None

    def _convert(self, flag: Flag, raw: str) -> Any:
        try:
            if flag.kind == INT:
                return int(raw, 0) if raw.lower().startswith(("0x", "0o")) else int(raw)
            if flag.kind == FLOAT:
                return float(raw)
        except ValueError:
            raise FlagError(
                f'invalid argument "{raw}" for "{flag.spelled()}" flag: '
                f"strconv.Parse{'Int' if flag.kind == INT else 'Float'}: parsing {raw!r}: invalid syntax"
            )
        return raw

    def _bool(self, flag: Flag, raw: str) -> bool:
        low = raw.lower()
        if low in ("1", "t", "true"):
            return True
        if low in ("0", "f", "false"):
            return False
        raise FlagError(
            f'invalid argument "{raw}" for "{flag.spelled()}" flag: strconv.ParseBool: parsing "{raw}": invalid syntax'
        )

    def parse(self, argv: list[str]) -> tuple[Options, list[str]]:
        values: dict[str, Any] = {f.dest: f.initial() for f in self.flags}
        explicit: set[str] = set()
        args: list[str] = []

        def assign(flag: Flag, raw: str) -> None:
            explicit.add(flag.long)
            if flag.kind == LIST:
                values[flag.dest].append(raw)
            elif flag.kind == BOOL:
                values[flag.dest] = self._bool(flag, raw)
            else:
                values[flag.dest] = self._convert(flag, raw)

        i = 0
        while i < len(argv):
            arg = argv[i]
            i += 1
            if arg == "--":
                args.extend(argv[i:])
                break
            if arg.startswith("--"):
                name, eq, raw = arg[2:].partition("=")
                if name == "help":
                    raise HelpRequested(self)
                flag = self._find_long(name)
                if flag is None:
                    raise FlagError(f"unknown flag: --{name}")
                if flag.kind == BOOL:
                    assign(flag, raw if eq else "true")
                elif eq:
                    assign(flag, raw)
                elif i < len(argv):
                    assign(flag, argv[i])
                    i += 1
                else:
                    raise FlagError(f"flag needs an argument: --{name}")
                continue
            if arg.startswith("-") and len(arg) > 1:
                j = 1
                while j < len(arg):
                    ch = arg[j]
                    j += 1
                    if ch == "h" and self._find_short("h") is None:
                        raise HelpRequested(self)
                    flag = self._find_short(ch)
                    if flag is None:
                        raise FlagError(f"unknown shorthand flag: '{ch}' in {arg}")
                    if flag.kind == BOOL:
                        if j < len(arg) and arg[j] == "=":
                            assign(flag, arg[j + 1 :])
                            break
                        assign(flag, "true")
                        continue
                    rest = arg[j:]
                    if rest.startswith("="):
                        rest = rest[1:]
                    if rest:
                        assign(flag, rest)
                    elif i < len(argv):
                        assign(flag, argv[i])
                        i += 1
                    else:
                        raise FlagError(f"flag needs an argument: '{ch}' in -{ch}")
                    break
                continue
            args.append(arg)
            if not self.interspersed:
                args.extend(argv[i:])
                break
        self.check_args(args)
        return Options(values, explicit), args

    def check_args(self, args: list[str]) -> None:
        n = len(args)
        if n < self.min_args:
            if self.min_args == 1:
                raise UsageError(f"'skiff {self.name}' requires at least 1 argument")
            raise UsageError(f"'skiff {self.name}' requires at least {self.min_args} arguments")
        if self.max_args is not None and n > self.max_args:
            if self.max_args == 0:
                raise UsageError(f"'skiff {self.name}' accepts no arguments")
            if self.max_args == self.min_args:
                raise UsageError(
                    f"'skiff {self.name}' requires exactly {self.max_args} argument"
                    + ("s" if self.max_args > 1 else "")
                )
            raise UsageError(f"'skiff {self.name}' requires at most {self.max_args} arguments")

    def help_text(self) -> str:
        lines = [f"Usage:  skiff {self.name} {self.usage}".rstrip(), "", self.summary]
        if self.aliases:
            lines += ["", "Aliases:", "  " + ", ".join(self.aliases)]
        visible = [f for f in self.flags if not f.hidden]
        if visible:
            lines += ["", "Options:"]
            specs = []
            for f in visible:
                spec = f"  -{f.short}, --{f.long}" if f.short else f"      --{f.long}"
                if f.kind != BOOL:
                    spec += " " + (f.metavar or f.kind)
                specs.append((spec, f.help))
            width = max(len(s) for s, _ in specs) + 3
            for spec, text in specs:
                lines.append(spec.ljust(width) + text)
        if self.example:
            lines += ["", "Example:"] + ["  " + e for e in self.example.splitlines()]
        return "\n".join(lines) + "\n"


def parse_filters(items: list[str]) -> dict[str, dict[str, bool]] | None:
    """`--filter key=value` items as the API's `filters` map, None when there are none."""
    if not items:
        return None
    out: dict[str, dict[str, bool]] = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not eq:
            raise FlagError(
                f'invalid argument "{item}" for "-f, --filter" flag: bad format of filter (expected name=value)'
            )
        out.setdefault(key.strip().lower(), {})[value] = True
    return out


def parse_kv(items: list[str]) -> dict[str, str]:
    """`key=value` items (--label, --opt) as a map; an item without "=" maps to ""."""
    out = {}
    for item in items:
        k, _, v = item.partition("=")
        out[k] = v
    return out


def prune_command(
    name: str,
    summary: str,
    example: str,
    *,
    filter_example: str = "until=<timestamp>",
    all_help: str = "",
    extra: tuple[Flag, ...] = (),
) -> Command:
    """`name`'s flags: --all (when `all_help` says what it adds), --filter, --force, `extra`."""
    flags = [Flag("all", "a", help=all_help)] if all_help else []
    flags += [
        Flag(
            "filter",
            kind=LIST,
            metavar="filter",
            help=f"Provide filter values (e.g. '{filter_example}')",
        ),
        Flag("force", "f", help="Do not prompt for confirmation"),
        *extra,
    ]
    return Command(name, summary, flags=flags, example=example, max_args=0)
