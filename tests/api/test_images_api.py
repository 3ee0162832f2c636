"""Images, layers and files per evidence: the image with a redacted config summary, file listing per
layer with path filters and pagination, the graveyard, and the layer browser's directory listing."""

from __future__ import annotations

import pytest

from .conftest import MINER

pytestmark = pytest.mark.django_db


def test_image_detail_redacts_secrets(team, world):
    body = team.client("viewer").get(f"/api/images/{world.image.pk}/").json()
    assert body["config_digest"] == world.image.config_digest and len(body["layers"]) == 3
    assert body["summary"]["runs_as_root"] is True and body["graveyard_count"] == 1
    env = " ".join(str(e) for e in body["summary"]["env"])
    assert "wJalrXUtnFEMIK7MDENGbPxRfiCYEXAMPLEKEY" not in env and "AWS_SECRET_ACCESS_KEY" in env
    assert "wJalrXUtnFEMIK7MDENGbPxRfiCYEXAMPLEKEY" not in str(body)
    assert team.client("outsider").get(f"/api/images/{world.image.pk}/").status_code == 404


def test_files_per_layer_with_prefix_and_pagination(team, world):
    url = f"/api/images/{world.image.pk}/files/"
    client = team.client("viewer")
    everything = client.get(url, {"page_size": 500}).json()
    assert everything["count"] == len(world.files)
    paths = [f["path"] for f in everything["results"]]
    assert paths == sorted(paths)
    layer1 = client.get(url, {"layer": 1, "page_size": 500}).json()
    assert {f["layer_index"] for f in layer1["results"]} == {1}
    first = client.get(url, {"path_prefix": "/usr/lib/", "page_size": 2}).json()
    assert first["count"] == 6 and len(first["results"]) == 2 and "page=2" in first["next"]
    second = client.get(first["next"]).json()
    assert [f["path"] for f in second["results"]] == ["/usr/lib/f00002", "/usr/lib/f00003"]
    # the prefix is exact: case-sensitive, and "%" or "_" are not wildcards
    assert client.get(url, {"path_prefix": "/USR/"}).json()["count"] == 0
    assert client.get(url, {"path_prefix": "/usr/lib/f_"}).json()["count"] == 0
    assert client.get(url, {"path_prefix": "/usr/%"}).json()["count"] == 0
    exact = client.get(url, {"path": "/usr/bin/.hidden_miner"}).json()
    assert [(f["layer_index"], f["change"]) for f in exact["results"]] == [(1, "added"), (2, "deleted")]
    assert client.get(url, {"visible": "false"}).json()["count"] == 2  # the miner and its whiteout
    assert client.get(url, {"sha256": "SHA256:" + MINER.upper()}).json()["count"] == 1
    assert client.get(url, {"change": "deleted"}).json()["count"] == 1
    for bad in (
        {"layer": 7},
        {"layer": "x"},
        {"sha256": "nothex"},
        {"visible": "maybe"},
        {"change": "x"},
        {"page": 99},
    ):
        response = client.get(url, bad)
        assert response.status_code in (400, 404), bad
        assert "detail" in response.json()


def test_graveyard_and_tree(team, world):
    client = team.client("viewer")
    grave = client.get(f"/api/images/{world.image.pk}/graveyard/").json()
    assert grave["count"] == 1
    miner = grave["results"][0]
    assert (miner["path"], miner["layer_index"], miner["hidden_by"], miner["hidden_how"]) == (
        "/usr/bin/.hidden_miner",
        1,
        2,
        "whiteout",
    )
    assert miner["sha256"] == MINER
    assert (
        client.get(f"/api/images/{world.image.pk}/graveyard/", {"path_prefix": "/etc/"}).json()["count"] == 0
    )
    tree = client.get(f"/api/images/{world.image.pk}/tree/", {"path": "/usr"}).json()
    assert tree["path"] == "/usr" and tree["view"] == "merged"
    assert [(c["name"], c["is_dir"]) for c in tree["children"]] == [("lib", True)]  # the miner is hidden
    layer = client.get(
        f"/api/images/{world.image.pk}/tree/", {"path": "/usr/bin", "view": "layer", "layer": 1}
    )
    children = layer.json()["children"]
    assert layer.json()["layer_index"] == 1 and children[0]["name"] == ".hidden_miner"
    assert children[0]["hidden"] == 1 and children[0]["record"]["sha256"] == MINER
    assert client.get(f"/api/images/{world.image.pk}/tree/", {"view": "sideways"}).status_code == 400
    assert team.client("outsider").get(f"/api/images/{world.image.pk}/graveyard/").status_code == 404
    assert team.client("outsider").get(f"/api/images/{world.image.pk}/tree/").status_code == 404
