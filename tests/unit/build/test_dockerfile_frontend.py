import pytest

from skiff.build.dockerfile import arg_decl, command_form, key_values, parse, words
from skiff.build.shell_words import expand_word, expand_words
from skiff.errors import InvalidArgument

ENV = {"A": "apple", "E": "", "P": "/usr/local"}


@pytest.mark.parametrize(
    "text,want",
    [
        ("$A", "apple"),
        ("${A}s", "apples"),
        ("x${MISSING}y", "xy"),
        ("${MISSING:-dflt}", "dflt"),
        ("${E:-dflt}", "dflt"),
        ("${E-dflt}", ""),
        ("${A:+set}", "set"),
        ("${E:+set}", ""),
        ("${E+set}", "set"),
        ("${MISSING:-${A}}", "apple"),
        ("'$A'", "$A"),
        ('"$A b"', "apple b"),
        ('"\\$A"', "$A"),
        ("\\$A", "$A"),
        ('"a\\nb"', "a\\nb"),
        ("$", "$"),
        ("${P}/bin", "/usr/local/bin"),
    ],
)
def test_expand_word(text: str, want: str) -> None:
    assert expand_word(text, ENV) == want


def test_expand_words_splits_outside_quotes() -> None:
    assert expand_words("a \"b c\" 'd $A' $A", ENV) == ["a", "b c", "d $A", "apple"]


def test_backtick_escape() -> None:
    assert expand_word("`$A", ENV, escape="`") == "$A"


@pytest.mark.parametrize("text", ["${A", "'open", '"open', "${A:x}", "${:-x}"])
def test_bad_substitutions_are_errors(text: str) -> None:
    with pytest.raises(InvalidArgument):
        expand_word(text, ENV)


def test_required_variable() -> None:
    with pytest.raises(InvalidArgument, match="X: must be set"):
        expand_word("${X:?must be set}", {})


DOCKERFILE = """\
# syntax=docker/dockerfile:1
ARG BASE=busybox
FROM ${BASE} AS build
ARG V=1
ENV A=b C="d e"
RUN echo $V \\
  && true
RUN <<EOF
echo heredoc
EOF
COPY --chown=1:2 --from=other ["a b", "/dst/"]
FROM build
ONBUILD RUN echo triggered
CMD ["sh", "-c", "echo hi"]
"""


def test_parse_stages_meta_args_and_forms() -> None:
    df = parse(DOCKERFILE)
    assert df.syntax == "docker/dockerfile:1"
    assert [a.args for a in df.meta_args] == [("BASE=busybox",)]
    assert [(s.base, s.name) for s in df.stages] == [("${BASE}", "build"), ("build", None)]
    first = df.stages[0].instructions
    assert [i.cmd for i in first] == ["ARG", "ENV", "RUN", "RUN", "COPY"]
    assert key_values(first[1], {}, "\\") == [("A", "b"), ("C", "d e")]
    assert first[3].heredocs[0].content == "echo heredoc\n"
    assert first[4].flag("chown") == "1:2" and first[4].flag("from") == "other"
    assert words(first[4], {}, "\\") == ["a b", "/dst/"]
    assert arg_decl(first[0], {}, "\\") == [("V", "1")]
    assert command_form(first[2], ["/bin/sh", "-c"])[:2] == ["/bin/sh", "-c"]
    last = df.stages[1].instructions
    assert last[0].onbuild is not None and last[0].onbuild.cmd == "RUN"
    assert command_form(last[1], ["/bin/sh", "-c"]) == ["sh", "-c", "echo hi"]
    assert df.stage("build").index == 0 and df.stage("1").index == 1


@pytest.mark.parametrize(
    "text,message",
    [
        ("FROM busybox\nFOO bar\n", "line 2: unknown instruction: FOO"),
        ("RUN echo\n", "no build stage"),
        ("FROM busybox\nCOPY onlyone\n", "line 2: COPY requires at least two arguments"),
        ("FROM busybox\nSHELL sh -c\n", "SHELL requires the arguments to be in JSON form"),
        ("# escape=x\nFROM busybox\n", "invalid ESCAPE"),
        ("FROM a AS x\nFROM b AS x\n", "duplicate stage name"),
        ("FROM busybox\nONBUILD FROM x\n", "isn't allowed as an ONBUILD trigger"),
        ("", "file with no instructions"),
        ("# just a comment\n", "file with no instructions"),
    ],
)
def test_syntax_errors_name_the_line(text: str, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        parse(text)


def test_unknown_target() -> None:
    with pytest.raises(InvalidArgument, match="failed to reach build target nope"):
        parse("FROM busybox\n").stage("nope")
