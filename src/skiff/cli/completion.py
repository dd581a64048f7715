"""`skiff completion bash|zsh`: completion scripts generated from the verbs' own flag tables.

Names of containers, images, networks and volumes are completed at TAB time by asking the
daemon through skiff itself (`skiff ps -a --format '{{.Names}}'`, …).
"""

from __future__ import annotations

import importlib
import sys

from skiff.cli.flags import BOOL, Command, Flag
from skiff.cli.main import GROUPS, VERBS, Context, ExitStatus

DYNAMIC = {
    "container": "skiff ps -a --format '{{.Names}}' 2>/dev/null",
    "image": "skiff images --format '{{.Repository}}:{{.Tag}}' 2>/dev/null | grep -v '<none>'",
    "network": "skiff network ls --format '{{.Name}}' 2>/dev/null",
    "volume": "skiff volume ls -q 2>/dev/null",
}


def command_for(display: str, module: str, func: str) -> Command | None:
    """The Command (flag table) behind a verb, found in its module."""
    mod = importlib.import_module(f"skiff.cli.{module}")
    if func in ("run", "create") and module == "containers":
        return mod._create_command(func, run=func == "run")  # type: ignore[no-any-return]
    fn = getattr(mod, func, None)
    if fn is not None and isinstance(getattr(fn, "command", None), Command):
        return fn.command  # type: ignore[no-any-return]
    last = display.split()[-1]
    candidates = [v for v in vars(mod).values() if isinstance(v, Command)]
    for c in candidates:
        if c.name == display:
            return c
    for c in candidates:
        if c.name.split()[-1] == last or c.name == func.rstrip("_"):
            return c
    return None


def _all_commands() -> dict[str, tuple[Command | None, str]]:
    out: dict[str, tuple[Command | None, str]] = {}
    for verb, (module, func, _) in VERBS.items():
        out[verb] = (command_for(verb, module, func), "")
    for group, subs in GROUPS.items():
        for sub, (module, func, _) in subs.items():
            if module == "registry":
                out[f"{group} {sub}"] = (None, "")
                continue
            out[f"{group} {sub}"] = (command_for(f"{group} {sub}", module, func), "")
    return out


def _flag_words(flags: list[Flag]) -> list[str]:
    words = []
    for f in flags:
        if f.hidden:
            continue
        words.append(f"--{f.long}")
        if f.short:
            words.append(f"-{f.short}")
    return words


def bash_script() -> str:
    cmds = _all_commands()
    top = sorted(set(VERBS) | set(GROUPS))
    lines = [
        "# bash completion for skiff; load with: source <(skiff completion bash)",
        "_skiff_names() {",
        '  case "$1" in',
    ]
    for kind, shell in DYNAMIC.items():
        lines.append(f"    {kind}) {shell} ;;")
    lines += [
        "  esac",
        "}",
        "",
        "_skiff() {",
        "  local cur prev words cword",
        '  cur="${COMP_WORDS[COMP_CWORD]}"',
        '  prev="${COMP_WORDS[COMP_CWORD-1]}"',
        '  local i verb="" sub=""',
        "  for ((i=1; i<COMP_CWORD; i++)); do",
        '    case "${COMP_WORDS[i]}" in',
        "      -H|--host|--tlscacert|--tlscert|--tlskey|--config) ((i++)); continue ;;",
        "      -*) continue ;;",
        "    esac",
        "    if [[ -z $verb ]]; then verb=${COMP_WORDS[i]}; elif [[ -z $sub ]]; then sub=${COMP_WORDS[i]}; break; fi",
        "  done",
        "  if [[ -z $verb ]]; then",
        f'    COMPREPLY=($(compgen -W "{" ".join(top)} --host --tls --tlsverify --help --version" -- "$cur")); return',
        "  fi",
        '  case "$verb" in',
    ]
    for group, subs in sorted(GROUPS.items()):
        lines.append(f"    {group})")
        lines.append(
            f'      if [[ -z $sub ]]; then COMPREPLY=($(compgen -W "{" ".join(sorted(subs))}" -- "$cur")); return; fi'
        )
        lines.append('      verb="$verb $sub" ;;')
    lines += ["  esac", '  local flags="" value_flags="" kind=""', '  case "$verb" in']
    for name, (cmd, _) in sorted(cmds.items()):
        if cmd is None:
            continue
        words = " ".join([*_flag_words(cmd.flags), "--help"])
        values = " ".join(
            w
            for f in cmd.flags
            if f.kind != BOOL
            for w in ([f"--{f.long}"] + ([f"-{f.short}"] if f.short else []))
        )
        lines.append(
            f'    "{name}") flags="{words}"; value_flags="{values}"; kind="{cmd.args_complete}" ;;'
        )
    lines += [
        "  esac",
        '  if [[ " $value_flags " == *" $prev "* ]]; then',
        '    case "$prev" in',
        '      --network|--net) COMPREPLY=($(compgen -W "$(_skiff_names network) host none bridge" -- "$cur")) ;;',
        '      -f|--file|-o|--output|-i|--input|--env-file|--cidfile|--iidfile|--label-file) COMPREPLY=($(compgen -f -- "$cur")) ;;',
        "      *) COMPREPLY=() ;;",
        "    esac",
        "    return",
        "  fi",
        '  if [[ $cur == -* ]]; then COMPREPLY=($(compgen -W "$flags" -- "$cur")); return; fi',
        '  if [[ -n $kind ]]; then COMPREPLY=($(compgen -W "$(_skiff_names $kind)" -- "$cur")); return; fi',
        '  COMPREPLY=($(compgen -f -- "$cur"))',
        "}",
        "complete -F _skiff skiff",
    ]
    return "\n".join(lines) + "\n"


def zsh_script() -> str:
    cmds = _all_commands()
    lines = [
        "#compdef skiff",
        "# zsh completion for skiff; load with: source <(skiff completion zsh)",
        "",
        "_skiff_names() {",
        "  local -a names",
        "  case $1 in",
    ]
    for kind, shell in DYNAMIC.items():
        lines.append(f'    {kind}) names=(${{(f)"$({shell})"}}) ;;')
    lines += [
        "  esac",
        "  compadd -a names",
        "}",
        "",
        "_skiff() {",
        "  local -a verbs",
        "  verbs=(",
    ]
    for verb, (_, _, summary) in sorted(VERBS.items()):
        lines.append(f"    '{verb}:{_zq(summary)}'")
    for group in sorted(GROUPS):
        lines.append(f"    '{group}:Manage {group}s'")
    lines += [
        "  )",
        "  local verb=${words[2]}",
        "  if (( CURRENT == 2 )); then",
        "    _describe 'command' verbs",
        "    return",
        "  fi",
        "  case $verb in",
    ]
    for group, subs in sorted(GROUPS.items()):
        lines.append(f"    {group})")
        lines.append("      if (( CURRENT == 3 )); then")
        lines.append(f"        compadd {' '.join(sorted(subs))}; return")
        lines.append("      fi")
        lines.append('      verb="$verb ${words[3]}" ;;')
    lines += ["  esac", "  case $verb in"]
    for name, (cmd, _) in sorted(cmds.items()):
        if cmd is None:
            continue
        specs = []
        for f in cmd.flags:
            if f.hidden:
                continue
            desc = _zq(f.help.replace("[", "(").replace("]", ")"))
            names = (
                f"(-{f.short} --{f.long})" + "{" + f"-{f.short},--{f.long}" + "}"
                if f.short
                else f"--{f.long}"
            )
            value = (
                "" if f.kind == BOOL else (":file:_files" if f.complete == "file" else ":value: ")
            )
            rep = "*" if f.kind == "list" else ""
            specs.append(
                f"'{rep}{names}[{desc}]{value}'"
                if not f.short
                else f"{rep}{names}'[{desc}]{value}'"
            )
        args = (
            f"'*:{cmd.args_complete}:_skiff_names {cmd.args_complete}'"
            if cmd.args_complete
            else "'*:file:_files'"
        )
        lines.append(f'    "{name}") _arguments {" ".join(specs)} {args} ;;')
    lines += ["  esac", "}", "", "compdef _skiff skiff"]
    return "\n".join(lines) + "\n"


def _zq(text: str) -> str:
    return text.replace("'", "'\\''").replace(":", "\\:")


COMPLETION = Command(
    "completion",
    "Print the shell completion script (bash or zsh)",
    usage="bash|zsh",
    example='source <(skiff completion bash)\nskiff completion zsh > "${fpath[1]}/_skiff"',
    min_args=1,
    max_args=1,
)


def completion(ctx: Context, argv: list[str]) -> int:
    _, args = COMPLETION.parse(argv)
    if args[0] == "bash":
        sys.stdout.write(bash_script())
    elif args[0] == "zsh":
        sys.stdout.write(zsh_script())
    else:
        raise ExitStatus(1, f"skiff: unsupported shell {args[0]!r} (bash or zsh)")
    return 0
