"""The web app without a browser: the list's counts against the input files, escaping, errors
shown on the page, the picture cache and its invalidation, the host rules. (test_web_browser.py
drives the same app in Chromium.)"""

from __future__ import annotations

import hashlib
import sys
from collections import Counter

import pytest

from helpers import DATA
from helpers import database_contents, load_json
from repo.errors import OptionError, QueryError, UnsupportedError
from repo.history import commit
from repo.importing import import_dataset
from repo.labels import rename_label
from repo.project import Project
from repo.readonly import read_only
from repo.web import check_host, serve
from repo.web.app import create_app
from repo.web.browse import Filters, list_images
from repo.web.pictures import CACHE_FOLDER
from vizdata import instances_with_label

PANOPTIC = DATA / "panopticapi_sample" / "coco"
DATUMARO = DATA / "datumaro_coco" / "coco"
HOSTILE = "<script>alert(1)</script>"


@pytest.fixture
def project(backend, tmp_path):
    project = backend.create()
    import_dataset(project, "coco", PANOPTIC, name="coco")
    import_dataset(project, "coco", DATUMARO, name="datumaro")
    import_dataset(project, "coco", instances_with_label(tmp_path / "hostile", HOSTILE), name="hostile")
    return project


@pytest.fixture
def client(project):
    app = create_app(project)
    return app.test_client()


def _images() -> set[tuple[str, str]]:
    """(subset, file_name) of every image of the three sources, from their files."""
    images = {("hostile", "hostile.jpg")}
    for folder, subset in ((PANOPTIC, "val2017"), (DATUMARO, "train"), (DATUMARO, "val")):
        images |= {(subset, i["file_name"]) for i in load_json(folder / "annotations" / f"image_info_{subset}.json")["images"]}
    return images


def test_the_list_counts_images_per_facet(project):
    listing = list_images(project, None, Filters())
    expected = _images()
    assert {(e.subset, e.file_name) for e in listing.entries} == expected
    assert listing.total == len(expected) and listing.pages == 1
    facets = {facet: dict(values) for facet, values in listing.facets.items()}
    assert facets["source"] == {"coco": 2, "datumaro": 2, "hostile": 1}
    assert facets["subset"] == dict(Counter(subset for subset, _ in expected))
    instances = load_json(PANOPTIC / "annotations" / "instances_val2017.json")
    horses = {c["id"] for c in instances["categories"] if c["name"] == "horse"}
    assert facets["label"]["horse"] == len({a["image_id"] for a in instances["annotations"] if a["category_id"] in horses})

    horse = list_images(project, None, Filters(where="label = 'horse'"))
    assert [e.file_name for e in horse.entries] == ["000000439180.jpg"]
    assert dict(horse.facets["label"]) == {"horse": 1}
    paged = list_images(project, None, Filters(), page=2, per_page=2)
    assert (paged.page, paged.pages, len(paged.entries)) == (2, 3, 2)
    assert list_images(project, None, Filters(label="a", subset="val")).total == 1
    with pytest.raises(QueryError, match="^--where: "):
        list_images(project, None, Filters(where="label = "))


def test_pages_escape_what_they_print(client):
    page = client.get("/")
    body = page.get_data(as_text=True)
    assert page.status_code == 200 and HOSTILE not in body
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body
    assert "script-src" not in page.headers["Content-Security-Policy"]  # default-src 'none': no script at all
    assert page.headers["Content-Security-Policy"].startswith("default-src 'none'")
    item = client.get("/item", query_string={"subset": "hostile", "file_name": "hostile.jpg"}).get_data(as_text=True)
    assert HOSTILE not in item and "&lt;script&gt;alert(1)&lt;/script&gt;" in item


def test_bad_input_is_a_message_on_the_page(client, project):
    before = database_contents(project)
    hostile = client.get("/", query_string={"where": "1=1; DROP TABLE items"})
    assert hostile.status_code == 400
    assert 'class="error"' in hostile.get_data(as_text=True) and "--where:" in hostile.get_data(as_text=True)
    script = client.get("/", query_string={"where": f"label = '{HOSTILE}' OR <b>"})
    assert script.status_code == 400 and "<b>" not in script.get_data(as_text=True)
    assert client.get("/", query_string={"rev": "nope"}).status_code == 404
    assert "unknown revision" in client.get("/", query_string={"rev": "nope"}).get_data(as_text=True)
    missing = client.get("/item", query_string={"subset": "val", "file_name": "nope.jpg"})
    assert missing.status_code == 404 and "no image val/nope.jpg" in missing.get_data(as_text=True)
    assert client.get("/item").status_code == 400
    assert client.get("/thumbnail", query_string={"subset": "val", "file_name": "nope.jpg"}).status_code == 404
    for response in (hostile, script, missing):
        assert "Traceback" not in response.get_data(as_text=True)
    assert database_contents(project) == before


def test_two_revisions_side_by_side(client, project):
    commit(project, "samples")
    rename_label(project, "person", "human")
    commit(project, "person -> human")
    page = client.get("/item", query_string={
        "subset": "val2017", "file_name": "000000142238.jpg", "rev": "HEAD~1", "vs": "HEAD", "tasks": "instances",
    }).get_data(as_text=True)
    instances = load_json(PANOPTIC / "annotations" / "instances_val2017.json")
    persons = sum(1 for a in instances["annotations"] if a["image_id"] == 142238 and a["category_id"] == 1)
    assert page.count('<tr class="changed" data-task="instances">') == 2 * persons
    assert "revision HEAD~1" in page and "revision HEAD" in page


def test_pictures_are_cached_until_what_they_show_changes(client, project):
    query = {"subset": "val2017", "file_name": "000000142238.jpg"}
    first = client.get("/thumbnail", query_string=query)
    assert first.status_code == 200 and first.mimetype == "image/png"
    cached = sorted((project.directory / CACHE_FOLDER / "thumbs").rglob("*.png"))
    assert len(cached) == 1 and cached[0].read_bytes() == first.data
    again = client.get("/thumbnail", query_string=query)
    assert again.headers["ETag"] == first.headers["ETag"]
    assert client.get("/thumbnail", query_string=query, headers={"If-None-Match": first.headers["ETag"]}).status_code == 304
    rename_label(project, "person", "human")  # the working state changes; no new revision
    renamed = client.get("/thumbnail", query_string=query)
    assert renamed.headers["ETag"] != first.headers["ETag"] and renamed.data != first.data
    assert len(list((project.directory / CACHE_FOLDER / "thumbs").rglob("*.png"))) == 2
    commit(project, "renamed")  # a commit changes nothing drawn
    assert client.get("/thumbnail", query_string={**query, "rev": "HEAD"}).headers["ETag"] == renamed.headers["ETag"]


def test_stats_page_shows_the_figures(client):
    page = client.get("/stats").get_data(as_text=True)
    assert '<img class="figures" src="/figures.png"' in page
    figures = client.get("/figures.png")
    assert figures.status_code == 200 and figures.data.startswith(b"\x89PNG")


def test_loopback_unless_asked(cli, backend):
    for host in ("127.0.0.1", "localhost", "::1", "127.0.0.2"):
        check_host(host, allow_remote=False)
    with pytest.raises(OptionError, match="--host 0.0.0.0 is not a loopback address"):
        check_host("0.0.0.0", allow_remote=False)
    check_host("0.0.0.0", allow_remote=True)
    args = backend.create_args()
    cli("create", *args)
    assert cli.text("serve", "-p", args[1], "--host", "0.0.0.0", code=1) == (
        "Error: --host 0.0.0.0 is not a loopback address: other machines could read the project; "
        "pass --allow-remote to serve it to them on purpose\n"
    )


def test_a_loopback_server_answers_only_loopback_names(project):
    from repo.web import trusted_hosts

    client = create_app(project, trusted_hosts("127.0.0.1", allow_remote=False)).test_client()
    assert client.get("/", headers={"Host": "127.0.0.1:8765"}).status_code == 200
    assert client.get("/", headers={"Host": "localhost:8765"}).status_code == 200
    assert client.get("/", headers={"Host": "attacker.example:8765"}).status_code == 400  # DNS rebinding


def test_without_flask_serve_says_what_to_install(project, monkeypatch):
    monkeypatch.setitem(sys.modules, "werkzeug.serving", None)  # what `import` sees when it is not installed
    with pytest.raises(UnsupportedError, match=r"^dsrepo serve needs Flask, which is not installed; pip install 'dsrepo\[viz\]'$"):
        serve(project, port=0)


def test_sqlite_file_is_untouched_by_the_app(tmp_path):
    """Byte for byte (PostgreSQL: every row, in the tests above and the browser test)."""
    project = Project.create(tmp_path / "project")
    import_dataset(project, "coco", PANOPTIC, name="coco")
    project.close()
    database = project.directory / "project.db"
    before = hashlib.sha256(database.read_bytes()).hexdigest()
    client = create_app(project).test_client()
    for path in ("/", "/?where=1%3D1%3B%20DROP%20TABLE%20items", "/stats", "/figures.png",
                 "/item?subset=val2017&file_name=000000142238.jpg",
                 "/overlay?subset=val2017&file_name=000000142238.jpg"):
        assert client.get(path).status_code in (200, 400)
    assert hashlib.sha256(database.read_bytes()).hexdigest() == before


def test_the_apps_connection_cannot_write(project):
    from sqlalchemy import text
    from sqlalchemy.exc import DBAPIError

    before = database_contents(project)
    with pytest.raises(DBAPIError, match="(?i)read-only|readonly"):
        with read_only(project).reading() as connection:
            connection.execute(text("DELETE FROM items"))
    assert database_contents(project) == before
