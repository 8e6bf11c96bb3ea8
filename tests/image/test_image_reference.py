import pytest

from jupybox.errors import UsageError
from jupybox.image.reference import familiar, normalize, parse_reference

D = "sha256:" + "a" * 64


@pytest.mark.parametrize("text,full,fam", [
    ("busybox", "docker.io/library/busybox:latest", "busybox:latest"),
    ("busybox:1.36", "docker.io/library/busybox:1.36", "busybox:1.36"),
    ("library/busybox", "docker.io/library/busybox:latest", "busybox:latest"),
    ("docker.io/busybox", "docker.io/library/busybox:latest", "busybox:latest"),
    ("index.docker.io/library/busybox:1", "docker.io/library/busybox:1", "busybox:1"),
    ("user/app", "docker.io/user/app:latest", "user/app:latest"),
    ("myimg", "docker.io/library/myimg:latest", "myimg:latest"),
    ("localhost/x", "localhost/x:latest", "localhost/x:latest"),
    ("localhost:5000/x", "localhost:5000/x:latest", "localhost:5000/x:latest"),
    ("localhost:5000/a/b/c:v1.2-rc_3", "localhost:5000/a/b/c:v1.2-rc_3", "localhost:5000/a/b/c:v1.2-rc_3"),
    ("ghcr.io/o/r:t", "ghcr.io/o/r:t", "ghcr.io/o/r:t"),
    ("[::1]:5000/x:y", "[::1]:5000/x:y", "[::1]:5000/x:y"),
    ("busybox@" + D, "docker.io/library/busybox@" + D, "busybox@" + D),
    ("busybox:1@" + D, "docker.io/library/busybox:1@" + D, "busybox:1@" + D),
    ("a__b-c---d/e.f", "docker.io/a__b-c---d/e.f:latest", "a__b-c---d/e.f:latest"),
    ("busybox:Latest", "docker.io/library/busybox:Latest", "busybox:Latest"),
])
def test_normalize(text, full, fam):
    r = parse_reference(text)
    assert str(r) == full == normalize(text)
    assert r.familiar() == fam == familiar(full)
    assert str(parse_reference(fam)) == full  # round trip


def test_parts():
    r = parse_reference("localhost:5000/team/app:v1")
    assert (r.domain, r.path, r.tag, r.digest) == ("localhost:5000", "team/app", "v1", None)
    assert r.name == "localhost:5000/team/app" and r.familiar_name() == "localhost:5000/team/app"
    assert parse_reference("busybox", default_tag=None).tag is None
    assert str(r.with_tag("v2")) == "localhost:5000/team/app:v2"


def test_uppercase_repository():
    with pytest.raises(UsageError, match="^invalid reference format: repository name must be lowercase$"):
        parse_reference("Busybox")
    with pytest.raises(UsageError, match="must be lowercase"):
        parse_reference("localhost:5000/Foo")
    # an uppercase first component is a registry, like docker
    assert str(parse_reference("Registry.Example/x")) == "Registry.Example/x:latest"


@pytest.mark.parametrize("bad", [
    "", " ", "a b", "busybox:", "busybox:-x", ":tag", "/x", "x/", "x//y", "-x", "x-", "busybox@sha256:abc",
    "busybox@sha256:" + "A" * 64, "a" * 64, "x:" + "t" * 129, "a__b.c/x", "x/" + "y" * 260,
])
def test_invalid(bad):
    with pytest.raises(UsageError, match="invalid"):
        parse_reference(bad)
