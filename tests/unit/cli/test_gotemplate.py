"""The Go-template subset behind --format."""

from __future__ import annotations

import pytest

from skiff.cli.gotemplate import HeaderRow, Template, TemplateError

DATA = {
    "Id": "abc",
    "State": {"Status": "running", "Running": True, "Pid": 42},
    "Config": {"Cmd": ["sleep", "300"], "Labels": {"b": "2", "a": "<1>"}, "Env": None},
    "Name": "/web",
}


@pytest.mark.parametrize(
    ("src", "out"),
    [
        ("{{.State.Status}}", "running"),
        ("{{.State.Pid}}", "42"),
        ("{{json .Config.Cmd}}", '["sleep","300"]'),
        ("{{json .Config.Labels}}", '{"b":"2","a":"\\u003c1\\u003e"}'),
        ("{{.Config.Labels}}", "map[a:<1> b:2]"),
        ("{{.Config.Cmd}}", "[sleep 300]"),
        ("{{.Missing}}", "<no value>"),
        ("{{.Config.Env}}", "<nil>"),
        ("{{range .Config.Cmd}}<{{.}}>{{end}}", "<sleep><300>"),
        ("{{range $k, $v := .Config.Labels}}{{$k}}={{$v}};{{end}}", "a=<1>;b=2;"),
        ('{{index .Config.Labels "b"}}', "2"),
        ("{{index .Config.Cmd 1}}", "300"),
        ('{{join .Config.Cmd ","}}', "sleep,300"),
        ('{{upper .State.Status}} {{lower "AB"}}', "RUNNING ab"),
        ("{{if .State.Running}}up{{else}}down{{end}}", "up"),
        ('{{if eq .State.Status "exited"}}x{{else if .State.Running}}r{{end}}', "r"),
        ("{{with .State}}{{.Pid}}{{end}}", "42"),
        ('{{.Name | printf "%s!"}}', "/web!"),
        ('{{len .Config.Cmd}} {{printf "%05d" .State.Pid}}', "2 00042"),
        ("{{- .Id -}} \n", "abc"),
        ('{{split .Name "w"}}', "[/ eb]"),
        ("{{truncate .Id 2}}|{{pad .Id 1 1}}|", "ab| abc |"),
        ("{{$x := .Id}}{{$x}}{{$.Name}}", "abc/web"),
    ],
)
def test_render(src: str, out: str) -> None:
    assert Template(src).render(DATA) == out


def test_methods_and_headers() -> None:
    class Row:
        ID = "1"

        def Label(self, key: str) -> str:
            return {"x": "y"}.get(key, "")

    assert Template('{{.ID}} {{.Label "x"}}').render(Row()) == "1 y"
    assert (
        Template('{{.ID}}\t{{.Label "x"}}').render(HeaderRow({"ID": "CONTAINER ID"}))
        == "CONTAINER ID\tx"
    )


@pytest.mark.parametrize("src", ["{{.A", "{{nosuchfunc .}}", "{{range .Config.Cmd}}", "{{end}}"])
def test_errors(src: str) -> None:
    with pytest.raises(TemplateError):
        Template(src).render(DATA)
