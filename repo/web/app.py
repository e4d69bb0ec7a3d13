"""The Flask application of `dsrepo serve`: server-rendered pages over a read-only project.

Routes (every page takes `rev`, a revision reference; none means the working state):
- `/`: the item list, paged, with thumbnails, the `--where` filter and source/subset/label facets;
- `/item?subset=S&file_name=F`: the full-size overlay, per-task toggles (`tasks`), the
  annotation table; `vs=B` shows revision `rev` and revision B side by side;
- `/stats`: the counts of `dsrepo stats` and the figures of `stats --plot`;
- `/thumbnail`, `/overlay`, `/figures.png`: the pictures those pages show.

Reads go through `repo.readonly.read_only`, whose connections cannot write. Jinja2 escapes
everything a template prints; a Content-Security-Policy forbids scripts altogether. A user
mistake (a bad filter, an unknown revision or image) is shown as a message on the page, and
any other failure as a one-line page: never a traceback.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from flask import Flask, Response, render_template, request, url_for
from werkzeug.exceptions import HTTPException

from repo.coco.tasks import TASKS
from repo.dataset import Annotation, Item, find_items
from repo.errors import DsrepoError, NotFoundError, OptionError
from repo.figures import combined, figure_data, png
from repo.history import log
from repo.project import Project
from repo.readonly import read_only
from repo.render import base_image, one_image
from repo.stats import compute_stats
from repo.store import revisions
from repo.web.browse import FACETS, Filters, Listing, list_images
from repo.web.pictures import CACHE_FOLDER, PictureCache, overlay, thumbnail, with_tasks

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; img-src 'self'; style-src 'self'; form-action 'self'; base-uri 'none'; "
        "frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
COMPARED = ("label", "bbox", "area", "iscrowd", "score", "caption")
_log = logging.getLogger("repo.web")


def create_app(project: Project, trusted_hosts: list[str] | None = None) -> Flask:
    """The app over `project`, read through a connection that cannot write."""
    app = Flask(__name__)
    app.config["TRUSTED_HOSTS"] = trusted_hosts
    app.jinja_env.globals["page_url"] = page_url
    reader = read_only(project)
    cache = PictureCache(project.directory / CACHE_FOLDER)

    @app.after_request
    def secure(response: Response) -> Response:
        response.headers.update(SECURITY_HEADERS)
        return response

    @app.errorhandler(DsrepoError)
    def user_error(error: DsrepoError) -> tuple[str, int]:
        status = 404 if isinstance(error, NotFoundError) else 400
        return render_template("error.html", message=str(error), **_common(reader)), status

    @app.errorhandler(Exception)
    def failure(error: Exception) -> Any:
        if isinstance(error, HTTPException):
            return error
        _log.exception("request failed: %s", request.url)
        return render_template("error.html", message=f"internal error ({type(error).__name__}); see the server's log"), 500

    @app.get("/")
    def index() -> str | tuple[str, int]:
        filters = Filters(_arg("where"), _arg("source"), _arg("subset"), _arg("label"))
        page = request.args.get("page", "1")
        context = _common(reader)
        try:
            listing = list_images(reader, _arg("rev"), filters, int(page) if page.isdigit() else 1)
        except NotFoundError:
            raise
        except DsrepoError as error:  # a bad filter: the page, with the message where the list would be
            return render_template("list.html", filters=filters, listing=None, error=str(error), **context), 400
        links = _facet_links(listing, filters, context["rev"])
        return render_template("list.html", filters=filters, listing=listing, error=None, facet_links=links, **context)

    @app.get("/item")
    def item_page() -> str:
        subset, file_name = _required("subset"), _required("file_name")
        rev, vs, where = _arg("rev"), _arg("vs"), _arg("where")
        sides = [_side(reader, subset, file_name, rev, where)]
        if vs is not None:
            sides.append(_side(reader, subset, file_name, vs, where))
        if not any(side.items for side in sides):
            raise NotFoundError(f"no image {subset}/{file_name} in {' or '.join(side.title for side in sides)}")
        present = [task for task in TASKS if any(task in side.tasks for side in sides)]
        chosen = [task for task in request.args.getlist("tasks") if task in present] or present
        for side in sides:
            side.choose(chosen)
        if len(sides) == 2:
            _mark_changes(sides[0], sides[1])
        return render_template(
            "item.html", subset=subset, file_name=file_name, sides=sides, present=present, chosen=chosen,
            where=where, vs=vs, **_common(reader),
        )

    @app.get("/thumbnail")
    def thumbnail_png() -> Response:
        subset, file_name, rev = _required("subset"), _required("file_name"), _arg("rev")
        items = _existing(_image(reader, subset, file_name, rev, None), subset, file_name, rev)
        data, key = thumbnail(cache, items)
        return _picture(data, key)

    @app.get("/overlay")
    def overlay_png() -> Response:
        subset, file_name, rev = _required("subset"), _required("file_name"), _arg("rev")
        items = _existing(_image(reader, subset, file_name, rev, _arg("where")), subset, file_name, rev)
        tasks = request.args.getlist("tasks") or None
        data, key = overlay(cache, with_tasks(items, tasks))
        return _picture(data, key)

    @app.get("/favicon.ico")
    def favicon() -> Response:
        return Response(status=204)  # no icon, and no error in the browser's console

    @app.get("/stats")
    def stats_page() -> str:
        rev = _arg("rev")
        return render_template("stats.html", stats=compute_stats(reader, rev=rev), **_common(reader))

    @app.get("/figures.png")
    def figures_png() -> Response:
        data = figure_data(reader, _arg("rev"))
        return Response(png(lambda: combined(data)), mimetype="image/png")

    return app


def _arg(name: str) -> str | None:
    value = request.args.get(name, "").strip()
    return value or None


def _required(name: str) -> str:
    value = request.args.get(name)
    if not value:
        raise OptionError(f"the address lacks the parameter '{name}'")
    return value


def _common(reader: Project) -> dict[str, Any]:
    """What the header of every page shows: the project, the revisions to choose from and
    the hashes of those the address names (`rev`, `vs`)."""
    try:
        history = log(reader)
    except DsrepoError:
        history = []
    by_seq = {revision.seq: revision.hash for revision in history}
    chosen = {}
    for name in ("rev", "vs"):
        reference = _arg(name)
        if reference is not None:
            try:
                with reader.reading() as connection:
                    chosen[name] = by_seq.get(revisions.resolve(connection, reference))
            except DsrepoError:
                chosen[name] = None
    return {
        "project": reader.directory.resolve().name, "revisions": history, "rev": _arg("rev"),
        "rev_hash": chosen.get("rev"), "vs_hash": chosen.get("vs"),
    }


def _facet_links(listing: Listing, filters: Filters, rev: str | None) -> dict[str, list[tuple[str, int, bool, str]]]:
    """Per facet: (value, images, chosen, address); a chosen value's address drops it again."""
    links: dict[str, list[tuple[str, int, bool, str]]] = {}
    for facet in FACETS:
        links[facet] = []
        for value, count in listing.facets[facet]:
            chosen = getattr(filters, facet) == value
            values = {name: getattr(filters, name) for name in FACETS} | {facet: None if chosen else value}
            links[facet].append((value, count, chosen, page_url("index", rev=rev, where=filters.where, **values)))
    return links


def _image(reader: Project, subset: str, file_name: str, rev: str | None, where: str | None) -> list[Item]:
    """The items of one image at `rev` (several sources may hold it); [] when none does."""
    items = find_items(reader, file_name, rev, subset=subset, where=where)
    return one_image([item for item in items if item.file_name == file_name], file_name)


def _existing(items: list[Item], subset: str, file_name: str, rev: str | None) -> list[Item]:
    if not items:
        at = f" at revision {rev}" if rev else ""
        raise NotFoundError(f"no image {subset}/{file_name}{at}")
    return items


def _picture(data: bytes, key: str) -> Response:
    response = Response(data, mimetype="image/png")
    response.set_etag(key)
    response.cache_control.no_cache = True  # revalidate: the same address shows new data after a change
    return response.make_conditional(request)


@dataclass
class Row:
    annotation: Annotation
    change: str = ""  # added, removed (shown on the older side), changed


class Side:
    """One revision's view of the image: its items and annotation rows, for the template."""

    def __init__(self, rev: str | None, items: list[Item]):
        self.rev = rev
        self.items = items
        self.tasks = {a.task for item in items for a in item.annotations}
        self.rows: list[Row] = []
        self.notes = base_image(items)[1] if items else []  # a missing image, drawn on a canvas

    @property
    def title(self) -> str:
        return f"revision {self.rev}" if self.rev else "working state"

    @property
    def sources(self) -> list[str]:
        return [item.source for item in self.items]

    def choose(self, tasks: Sequence[str]) -> None:
        self.rows = [Row(a) for item in self.items for a in item.annotations if a.task in tasks]


def _side(reader: Project, subset: str, file_name: str, rev: str | None, where: str | None) -> Side:
    """A revision's side; empty when the image is not in that revision."""
    return Side(rev, _image(reader, subset, file_name, rev, where))


def _key(annotation: Annotation) -> tuple[Any, ...]:
    return (annotation.source, annotation.task, annotation.coco_id)


def _mark_changes(before: Side, after: Side) -> None:
    old = {_key(row.annotation): row for row in before.rows}
    new = {_key(row.annotation): row for row in after.rows}
    for key, row in new.items():
        if key not in old:
            row.change = "added"
        elif any(getattr(row.annotation, name) != getattr(old[key].annotation, name) for name in COMPARED):
            row.change = old[key].change = "changed"
    for key, row in old.items():
        if key not in new:
            row.change = "removed"


def page_url(endpoint: str, **values: Any) -> str:
    """An address with the given parameters; empty ones are left out."""
    return url_for(endpoint, **{name: value for name, value in values.items() if value not in (None, "", [])})
