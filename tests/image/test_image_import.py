import gzip
import hashlib
import io
import os
import threading

import pytest

from jbx_image_helpers import f, rootfs_tar
from jupybox.errors import StoreError, UnsafeArchive, UsageError
from jupybox.image import import_rootfs, parse_changes
from jupybox.image import mediatypes as mt


def sha(b: bytes) -> str:
    return "sha256:" + hashlib.sha256(b).hexdigest()


def test_parse_changes():
    cfg = parse_changes([
        'CMD ["sh"]',
        "ENTRYPOINT /entry.sh --flag",
        "ENV A=1 B=\"two words\"",
        "env LEGACY value with spaces",
        "ENV A=3",
        "WORKDIR /app",
        "WORKDIR sub",
        "USER 1000:1000",
        "LABEL k=v \"x y\"=z",
        "EXPOSE 80/tcp 53/udp 8000-8002",
        'VOLUME ["/data"]',
        "STOPSIGNAL SIGTERM",
    ])
    assert cfg["Cmd"] == ["sh"]
    assert cfg["Entrypoint"] == ["/bin/sh", "-c", "/entry.sh --flag"]
    assert cfg["Env"] == ["B=two words", "LEGACY=value with spaces", "A=3"]
    assert cfg["WorkingDir"] == "/app/sub" and cfg["User"] == "1000:1000"
    assert cfg["Labels"] == {"k": "v", "x y": "z"}
    assert set(cfg["ExposedPorts"]) == {"80/tcp", "53/udp", "8000/tcp", "8001/tcp", "8002/tcp"}
    assert cfg["Volumes"] == {"/data": {}} and cfg["StopSignal"] == "SIGTERM"
    assert parse_changes(["CMD sh -c 'echo hi'"])["Cmd"] == ["/bin/sh", "-c", "sh -c 'echo hi'"]
    assert parse_changes(["CMD [not json"])["Cmd"] == ["/bin/sh", "-c", "[not json"]


@pytest.mark.parametrize("bad", ["FROM busybox", "RUN echo", "CMD", "ENV", "ENV =x", "EXPOSE 99999",
                                 "EXPOSE http", "LABEL k=\"unterminated", "NOPE x"])
def test_bad_changes(bad):
    with pytest.raises(UsageError, match="invalid change"):
        parse_changes([bad])


def test_bad_change_reads_nothing(image_store, tmp_path):
    class Boom(io.RawIOBase):
        def read(self, n=-1):
            raise AssertionError("input read before the changes were validated")
    with pytest.raises(UsageError):
        import_rootfs(image_store, Boom(), "x", ["FROM scratch"])


@pytest.mark.parametrize("compression", ["none", "gzip", "zstd"])
def test_import_compression_choices(image_store, compression):
    tar = rootfs_tar([f("big", os.urandom(1 << 20))])
    img = import_rootfs(image_store, io.BytesIO(gzip.compress(tar)), "c", compression=compression)
    (layer,) = img.layers
    assert img.diff_ids == [sha(tar)]
    assert layer["mediaType"] == {"none": mt.OCI_LAYER, "gzip": mt.OCI_LAYER_GZIP, "zstd": mt.OCI_LAYER_ZSTD}[compression]
    blob = image_store.blob_path(layer["digest"]).read_bytes()
    assert sha(blob) == layer["digest"] and len(blob) == layer["size"]
    if compression == "none":
        assert layer["digest"] == sha(tar)
    (d0,) = image_store.layer_dirs(img)
    assert os.path.getsize(d0 + "/big") == 1 << 20
    # re-unpacking from the stored blob gives the same layer
    os.system(f"rm -rf {image_store.layer_path(img.diff_ids[0])}")
    assert image_store.layer_dirs(img) == [d0] and os.path.getsize(d0 + "/big") == 1 << 20


def test_import_from_path_and_from_a_pipe(image_store, tmp_path):
    tar = rootfs_tar()
    p = tmp_path / "rootfs.tar.gz"
    p.write_bytes(gzip.compress(tar))
    a = import_rootfs(image_store, p, "frompath", message="my message")
    assert a.history()[0]["comment"] == "my message" and a.inspect()["Comment"] == "my message"
    r, w = os.pipe()

    def feed():
        with os.fdopen(w, "wb") as out:
            out.write(gzip.compress(tar))

    t = threading.Thread(target=feed)
    t.start()
    with os.fdopen(r, "rb") as src:  # not seekable: one pass only
        b = import_rootfs(image_store, src, "frompipe")
    t.join()
    assert a.id != b.id and a.diff_ids == b.diff_ids == [sha(tar)]
    assert a.layers[0]["digest"] == b.layers[0]["digest"]
    with pytest.raises(UsageError, match="no such file"):
        import_rootfs(image_store, tmp_path / "missing.tar", "x")


def test_import_untagged_and_hostile(image_store):
    img = import_rootfs(image_store, io.BytesIO(rootfs_tar()))
    assert img.refs == [] and image_store.resolve(img.short_id).id == img.id
    with pytest.raises(UnsafeArchive):
        import_rootfs(image_store, io.BytesIO(rootfs_tar([f("../evil")])), "evil")
    with pytest.raises(StoreError):
        import_rootfs(image_store, io.BytesIO(b"not a tarball at all" * 50), "junk")
    assert os.listdir(image_store.tmp) == []
    assert [i.refs for i in image_store.list()] == [[], ["host:latest"]]
