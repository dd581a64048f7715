from skiff.errors import Conflict, NotFound, SkiffError


def test_wrap_keeps_class_and_prepends_context() -> None:
    err = NotFound("no such layer").wrap("image sha256:ab")
    assert isinstance(err, NotFound)
    assert isinstance(err, SkiffError)
    assert str(err) == "image sha256:ab: no such layer"


def test_classes_are_distinct() -> None:
    assert not issubclass(Conflict, NotFound)
