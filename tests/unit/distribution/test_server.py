"""The registry server, over real loopback HTTP, against the OCI distribution spec v1.1."""

from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path

from skiff.distribution.storage import Storage

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def blob_files(root: Path) -> list[Path]:
    return [p for p in (root / "blobs").rglob("*") if p.is_file()]


def test_ping_sends_api_version(registry):
    r = registry.request("GET", "/v2/")
    assert r.status == 200
    assert r.headers["Docker-Distribution-API-Version"] == "registry/2.0"


def test_monolithic_upload_then_get_head_and_range(registry):
    data = os.urandom(10000)
    d = registry.push_blob("a/b", data)
    r = registry.request("GET", f"/v2/a/b/blobs/{d}")
    assert (r.status, r.body, r.headers["Docker-Content-Digest"]) == (200, data, d)
    h = registry.request("HEAD", f"/v2/a/b/blobs/{d}")
    assert h.status == 200 and h.headers["Content-Length"] == "10000" and h.body == b""
    p = registry.request("GET", f"/v2/a/b/blobs/{d}", headers={"Range": "bytes=100-199"})
    assert p.status == 206 and p.body == data[100:200]
    assert p.headers["Content-Range"] == "bytes 100-199/10000"
    tail = registry.request("GET", f"/v2/a/b/blobs/{d}", headers={"Range": "bytes=9990-"})
    assert tail.status == 206 and tail.body == data[9990:]
    bad = registry.request("GET", f"/v2/a/b/blobs/{d}", headers={"Range": "bytes=20000-"})
    assert bad.status == 416 and bad.headers["Content-Range"] == "bytes */10000"


def test_blob_unknown_in_other_repository(registry):
    d = registry.push_blob("a/b", b"hello")
    r = registry.request("GET", f"/v2/other/blobs/{d}")
    assert r.status == 404 and r.codes() == ["BLOB_UNKNOWN"]


def test_wrong_digest_is_digest_invalid_and_stores_nothing(registry):
    r = registry.request("POST", f"/v2/a/blobs/uploads/?digest={sha(b'other')}", b"content")
    assert r.status == 400 and r.codes() == ["DIGEST_INVALID"]
    assert blob_files(registry.root) == []
    assert list((registry.root / "uploads").iterdir()) == []
    # Same through POST + PATCH + PUT.
    loc = registry.request("POST", "/v2/a/blobs/uploads/").headers["Location"]
    assert registry.request("PATCH", loc, b"content").status == 202
    r = registry.request("PUT", f"{loc}?digest={sha(b'other')}")
    assert r.status == 400 and r.codes() == ["DIGEST_INVALID"]
    assert blob_files(registry.root) == []
    assert registry.request("GET", loc).status == 404


def test_malformed_digest(registry):
    r = registry.request("GET", "/v2/a/blobs/sha256:xyz")
    assert r.status == 400 and r.codes() == ["DIGEST_INVALID"]


def test_chunked_upload_in_order_status_and_out_of_order_416(registry):
    data = os.urandom(3000)
    r = registry.request("POST", "/v2/a/blobs/uploads/")
    assert r.status == 202 and r.headers["Docker-Upload-UUID"]
    loc = r.headers["Location"]
    r = registry.request(
        "PATCH",
        loc,
        data[:1000],
        {"Content-Range": "0-999", "Content-Type": "application/octet-stream"},
    )
    assert r.status == 202 and r.headers["Range"] == "0-999"
    r = registry.request("PATCH", loc, data[2000:], {"Content-Range": "2000-2999"})
    assert r.status == 416 and r.headers["Range"] == "0-999"
    st = registry.request("GET", loc)
    assert st.status == 204 and st.headers["Range"] == "0-999" and st.headers["Docker-Upload-UUID"]
    r = registry.request("PATCH", loc, data[1000:2000], {"Content-Range": "1000-1999"})
    assert r.status == 202 and r.headers["Range"] == "0-1999"
    r = registry.request(
        "PUT", f"{loc}?digest={sha(data)}", data[2000:], {"Content-Range": "2000-2999"}
    )
    assert r.status == 201 and r.headers["Docker-Content-Digest"] == sha(data)
    assert registry.request("GET", f"/v2/a/blobs/{sha(data)}").body == data


def test_streamed_patch_with_chunked_transfer_encoding(registry):
    data = os.urandom(5000)
    loc = registry.request("POST", "/v2/a/blobs/uploads/").headers["Location"]

    def gen():
        yield data[:1234]
        yield data[1234:]

    import http.client

    conn = http.client.HTTPConnection(registry.host)
    conn.request(
        "PATCH", loc, body=gen(), encode_chunked=True, headers={"Transfer-Encoding": "chunked"}
    )
    r = conn.getresponse()
    r.read()
    assert r.status == 202 and r.headers["Range"] == "0-4999"
    # The same keep-alive connection carries the next request.
    conn.request("PUT", f"{loc}?digest={sha(data)}", body=b"")
    r2 = conn.getresponse()
    r2.read()
    assert r2.status == 201
    conn.close()


def test_upload_cancel(registry):
    loc = registry.request("POST", "/v2/a/blobs/uploads/").headers["Location"]
    registry.request("PATCH", loc, b"abc")
    assert registry.request("DELETE", loc).status == 204
    r = registry.request("PATCH", loc, b"def")
    assert r.status == 404 and r.codes() == ["BLOB_UPLOAD_UNKNOWN"]
    assert list((registry.root / "uploads").iterdir()) == []


def test_upload_of_another_repository_is_unknown(registry):
    loc = registry.request("POST", "/v2/a/blobs/uploads/").headers["Location"]
    r = registry.request("GET", loc.replace("/v2/a/", "/v2/b/"))
    assert r.status == 404 and r.codes() == ["BLOB_UPLOAD_UNKNOWN"]


def test_post_then_put_with_body(registry):
    data = b"monolithic via put"
    loc = registry.request("POST", "/v2/a/blobs/uploads/").headers["Location"]
    r = registry.request("PUT", f"{loc}?digest={sha(data)}", data)
    assert r.status == 201


def test_sha512_blob(registry):
    data = b"sha512 content"
    d = "sha512:" + hashlib.sha512(data).hexdigest()
    r = registry.request("POST", f"/v2/a/blobs/uploads/?digest={d}", data)
    assert r.status == 201
    assert registry.request("GET", f"/v2/a/blobs/{d}").body == data


def test_cross_repository_and_anonymous_mount(registry):
    d = registry.push_blob("src/repo", b"shared layer")
    r = registry.request("POST", f"/v2/dst/blobs/uploads/?mount={d}&from=src/repo")
    assert r.status == 201 and r.headers["Docker-Content-Digest"] == d
    assert registry.request("HEAD", f"/v2/dst/blobs/{d}").status == 200
    # Not in the named source: an upload session instead.
    r = registry.request("POST", f"/v2/dst2/blobs/uploads/?mount={d}&from=nowhere")
    assert r.status == 202 and r.headers["Location"]
    # Anonymous mount (no from): the registry has it somewhere.
    r = registry.request("POST", f"/v2/dst3/blobs/uploads/?mount={d}")
    assert r.status == 201
    r = registry.request("POST", f"/v2/dst4/blobs/uploads/?mount={sha(b'unknown')}")
    assert r.status == 202
    # Deduplicated: one file for the blob.
    assert len(blob_files(registry.root)) == 1


def test_blob_delete(registry):
    d = registry.push_blob("a", b"to delete")
    assert registry.request("DELETE", f"/v2/a/blobs/{d}").status == 202
    assert registry.request("HEAD", f"/v2/a/blobs/{d}").status == 404
    r = registry.request("DELETE", f"/v2/a/blobs/{d}")
    assert r.status == 404 and r.codes() == ["BLOB_UNKNOWN"]


def test_manifest_put_get_by_tag_and_digest(registry):
    digest, body = registry.push_image("lib/img", "v1", [b"layer one"])
    assert digest == sha(body)
    for ref in ("v1", digest):
        r = registry.request(
            "GET", f"/v2/lib/img/manifests/{ref}", headers={"Accept": OCI_MANIFEST}
        )
        assert r.status == 200 and r.body == body
        assert r.headers["Content-Type"] == OCI_MANIFEST
        assert r.headers["Docker-Content-Digest"] == digest
        h = registry.request("HEAD", f"/v2/lib/img/manifests/{ref}")
        assert h.status == 200 and h.headers["Content-Length"] == str(len(body))
    r = registry.request("GET", "/v2/lib/img/manifests/nope")
    assert r.status == 404 and r.codes() == ["MANIFEST_UNKNOWN"]


def test_manifest_put_by_digest_must_match(registry):
    digest, body = registry.push_image("lib/img", "v1", [b"x"])
    r = registry.request(
        "PUT", f"/v2/lib/img/manifests/{sha(b'other')}", body, {"Content-Type": OCI_MANIFEST}
    )
    assert r.status == 400 and r.codes() == ["DIGEST_INVALID"]
    r = registry.request(
        "PUT", f"/v2/lib/img/manifests/{digest}", body, {"Content-Type": OCI_MANIFEST}
    )
    assert r.status == 201


def test_manifest_naming_missing_blob_is_manifest_blob_unknown(registry):
    cfg = registry.push_blob("a", b"{}")
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": cfg,
            "size": 2,
        },
        "layers": [
            {
                "mediaType": "application/vnd.oci.image.layer.v1.tar",
                "digest": sha(b"missing"),
                "size": 7,
            }
        ],
    }
    r = registry.request(
        "PUT", "/v2/a/manifests/t", json.dumps(manifest).encode(), {"Content-Type": OCI_MANIFEST}
    )
    assert r.status == 400 and r.codes() == ["MANIFEST_BLOB_UNKNOWN"]
    assert r.json()["errors"][0]["detail"] == {"digest": sha(b"missing")}
    assert registry.request("GET", "/v2/a/manifests/t").status == 404


def test_index_needs_its_children(registry):
    child, child_body = registry.push_image("a", "c", [b"l"])
    index = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [
            {
                "mediaType": OCI_MANIFEST,
                "digest": child,
                "size": len(child_body),
                "platform": {"os": "linux", "architecture": "amd64"},
            }
        ],
    }
    r = registry.request(
        "PUT", "/v2/a/manifests/multi", json.dumps(index).encode(), {"Content-Type": OCI_INDEX}
    )
    assert r.status == 201
    index["manifests"].append({"mediaType": OCI_MANIFEST, "digest": sha(b"nope"), "size": 4})
    r = registry.request(
        "PUT", "/v2/a/manifests/multi2", json.dumps(index).encode(), {"Content-Type": OCI_INDEX}
    )
    assert r.status == 400 and r.codes() == ["MANIFEST_UNKNOWN"]


def test_docker_media_types(registry):
    cfg = registry.push_blob("d", b'{"os":"linux"}')
    layer = registry.push_blob("d", b"gz")
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {
            "mediaType": "application/vnd.docker.container.image.v1+json",
            "digest": cfg,
            "size": 14,
        },
        "layers": [
            {
                "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                "digest": layer,
                "size": 2,
            }
        ],
    }
    body = json.dumps(manifest).encode()
    r = registry.request("PUT", "/v2/d/manifests/x", body, {"Content-Type": manifest["mediaType"]})
    assert r.status == 201
    lst = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.list.v2+json",
        "manifests": [
            {
                "mediaType": manifest["mediaType"],
                "digest": sha(body),
                "size": len(body),
                "platform": {"os": "linux", "architecture": "amd64"},
            }
        ],
    }
    r = registry.request(
        "PUT", "/v2/d/manifests/list", json.dumps(lst).encode(), {"Content-Type": lst["mediaType"]}
    )
    assert r.status == 201
    g = registry.request("GET", "/v2/d/manifests/list")
    assert g.headers["Content-Type"] == lst["mediaType"]


def test_manifest_invalid_and_too_large(registry):
    r = registry.request("PUT", "/v2/a/manifests/t", b"not json", {"Content-Type": OCI_MANIFEST})
    assert r.status == 400 and r.codes() == ["MANIFEST_INVALID"]
    r = registry.request(
        "PUT", "/v2/a/manifests/t", b'{"schemaVersion": 1}', {"Content-Type": OCI_MANIFEST}
    )
    assert r.status == 400 and r.codes() == ["MANIFEST_INVALID"]
    big = b" " * (4 * 1024 * 1024 + 1)
    r = registry.request("PUT", "/v2/a/manifests/t", big, {"Content-Type": OCI_MANIFEST})
    assert r.status == 413 and r.codes() == ["SIZE_INVALID"]


def test_name_invalid(registry):
    r = registry.request("GET", "/v2/UPPER/tags/list")
    assert r.status == 400 and r.codes() == ["NAME_INVALID"]


def test_tags_list_pagination_and_link(registry):
    for t in ("c", "a", "b", "d"):
        registry.push_image("p", t, [b"l"])
    r = registry.request("GET", "/v2/p/tags/list")
    assert r.json() == {"name": "p", "tags": ["a", "b", "c", "d"]}
    r = registry.request("GET", "/v2/p/tags/list?n=2")
    assert r.json()["tags"] == ["a", "b"]
    assert r.headers["Link"] == '</v2/p/tags/list?n=2&last=b>; rel="next"'
    r = registry.request("GET", "/v2/p/tags/list?n=2&last=b")
    assert r.json()["tags"] == ["c", "d"] and "Link" not in r.headers
    r = registry.request("GET", "/v2/p/tags/list?n=0")
    assert r.json()["tags"] == []
    r = registry.request("GET", "/v2/nothing/tags/list")
    assert r.status == 404 and r.codes() == ["NAME_UNKNOWN"]


def test_catalog_pagination(registry):
    for repo in ("z/one", "a", "m/n/o"):
        registry.push_blob(repo, repo.encode())
    assert registry.request("GET", "/v2/_catalog").json() == {
        "repositories": ["a", "m/n/o", "z/one"]
    }
    r = registry.request("GET", "/v2/_catalog?n=1&last=a")
    assert r.json() == {"repositories": ["m/n/o"]} and 'rel="next"' in r.headers["Link"]


def test_manifest_delete_by_digest_and_tag(registry):
    digest, _ = registry.push_image("a", "v1", [b"l"])
    registry.request(
        "PUT",
        "/v2/a/manifests/v2",
        registry.request("GET", "/v2/a/manifests/v1").body,
        {"Content-Type": OCI_MANIFEST},
    )
    assert registry.request("DELETE", "/v2/a/manifests/v2").status == 202
    assert registry.request("GET", "/v2/a/tags/list").json()["tags"] == ["v1"]
    assert registry.request("DELETE", f"/v2/a/manifests/{digest}").status == 202
    assert registry.request("GET", f"/v2/a/manifests/{digest}").status == 404
    assert registry.request("GET", "/v2/a/tags/list").json()["tags"] == []


def test_referrers_subject_header_and_artifact_type_filter(registry):
    subject, body = registry.push_image("r", "v1", [b"l"])
    empty = registry.request("GET", f"/v2/r/referrers/{subject}")
    assert empty.status == 200 and empty.headers["Content-Type"] == OCI_INDEX
    assert empty.json() == {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}
    sub = {"mediaType": OCI_MANIFEST, "digest": subject, "size": len(body)}
    registry.push_blob("r", b"{}")
    cfg = {"mediaType": "application/vnd.oci.empty.v1+json", "digest": sha(b"{}"), "size": 2}
    sig = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": "application/vnd.example.sig",
        "config": cfg,
        "layers": [cfg],
        "subject": sub,
        "annotations": {"k": "v"},
    }
    sbom = {**sig, "artifactType": "application/vnd.example.sbom", "annotations": {}}
    for doc in (sig, sbom):
        data = json.dumps(doc).encode()
        r = registry.request(
            "PUT", f"/v2/r/manifests/{sha(data)}", data, {"Content-Type": OCI_MANIFEST}
        )
        assert r.status == 201 and r.headers["OCI-Subject"] == subject
    got = registry.request("GET", f"/v2/r/referrers/{subject}").json()["manifests"]
    assert sorted(m["artifactType"] for m in got) == [
        "application/vnd.example.sbom",
        "application/vnd.example.sig",
    ]
    f = registry.request(
        "GET", f"/v2/r/referrers/{subject}?artifactType=application/vnd.example.sig"
    )
    assert f.headers["OCI-Filters-Applied"] == "artifactType"
    [only] = f.json()["manifests"]
    assert only["artifactType"] == "application/vnd.example.sig" and only["annotations"] == {
        "k": "v"
    }
    assert registry.request("GET", "/v2/r/referrers/sha256:bad").status == 400


def test_artifact_manifest_accepted(registry):
    d = registry.push_blob("art", b"artifact blob")
    doc = {
        "mediaType": "application/vnd.oci.artifact.manifest.v1+json",
        "artifactType": "x/y",
        "blobs": [{"mediaType": "application/octet-stream", "digest": d, "size": 13}],
    }
    r = registry.request(
        "PUT",
        "/v2/art/manifests/t",
        json.dumps(doc).encode(),
        {"Content-Type": "application/vnd.oci.artifact.manifest.v1+json"},
    )
    assert r.status == 201


def test_two_concurrent_pushes_of_the_same_blob_both_succeed(registry):
    data = os.urandom(2 << 20)
    d = sha(data)
    results: list[int] = []

    def push(repo: str) -> None:
        loc = registry.request("POST", f"/v2/{repo}/blobs/uploads/").headers["Location"]
        for i in range(0, len(data), 256 << 10):
            chunk = data[i : i + (256 << 10)]
            r = registry.request(
                "PATCH", loc, chunk, {"Content-Range": f"{i}-{i + len(chunk) - 1}"}
            )
            assert r.status == 202
        results.append(registry.request("PUT", f"{loc}?digest={d}").status)

    threads = [threading.Thread(target=push, args=(repo,)) for repo in ("c/one", "c/two", "c/one")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [201, 201, 201]
    for repo in ("c/one", "c/two"):
        assert registry.request("GET", f"/v2/{repo}/blobs/{d}").body == data
    assert len(blob_files(registry.root)) == 1


def test_gc_removes_unreferenced_blobs_only(registry):
    digest, _ = registry.push_image("g", "v1", [b"kept layer"])
    orphan = registry.push_blob("g", b"orphan blob")
    report = Storage(registry.root).gc(grace_seconds=3600)
    assert report.deleted_blobs == []  # young blobs are spared
    report = Storage(registry.root).gc(grace_seconds=0)
    assert report.deleted_blobs == [orphan]
    assert registry.request("HEAD", f"/v2/g/blobs/{orphan}").status == 404
    assert registry.request("GET", "/v2/g/manifests/v1").status == 200
    assert registry.request("GET", f"/v2/g/blobs/{sha(b'kept layer')}").status == 200
    # Untagged manifests go with --delete-untagged, and then their blobs.
    registry.request("DELETE", "/v2/g/manifests/v1")
    report = Storage(registry.root).gc(grace_seconds=0, delete_untagged=True)
    assert report.deleted_manifests == [f"g@{digest}"]
    assert sha(b"kept layer") in report.deleted_blobs


def test_unknown_route(registry):
    r = registry.request("GET", "/v3/")
    assert r.status == 404


def test_empty_blob(registry):
    d = registry.push_blob("e", b"")
    r = registry.request("GET", f"/v2/e/blobs/{d}")
    assert r.status == 200 and r.body == b"" and r.headers["Content-Length"] == "0"


def test_manifest_by_sha512_digest(registry):
    _, body = registry.push_image("s", "v1", [b"l"])
    d512 = "sha512:" + hashlib.sha512(body).hexdigest()
    r = registry.request("PUT", f"/v2/s/manifests/{d512}", body, {"Content-Type": OCI_MANIFEST})
    assert r.status == 201 and r.headers["Docker-Content-Digest"] == d512
    g = registry.request("GET", f"/v2/s/manifests/{d512}")
    assert g.status == 200 and g.body == body


def test_manifest_served_as_blob_and_bad_content_length(registry):
    digest, body = registry.push_image("m", "v1", [b"l"])
    assert registry.request("GET", f"/v2/m/blobs/{digest}").body == body
    import socket

    loc = (
        registry.request("POST", "/v2/m/blobs/uploads/")
        .headers["Location"]
        .split(registry.host, 1)[1]
    )
    with socket.create_connection(("127.0.0.1", registry.server.server_address[1])) as s:
        s.sendall(f"PATCH {loc} HTTP/1.1\r\nHost: h\r\nContent-Length: nope\r\n\r\n".encode())
        reply = s.recv(4096)
        assert reply.startswith(b"HTTP/1.1 400") and b"Connection: close" in reply
