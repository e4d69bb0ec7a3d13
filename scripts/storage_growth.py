"""How much a project database grows when one annotation changes, and whether history slows
reads down.

Imports a generated val2017-sized dataset, commits, changes one annotation's bbox in a copy
of the files, updates the source from it, commits again, and prints the database size before
and after. Then it piles up --history more revisions, each rewriting a tenth of the
annotations, and times an export of the working state and of HEAD before and after, on
SQLite and (with --pg-url) on PostgreSQL.

    python scripts/storage_growth.py [--images 5000] [--pg-url postgresql+psycopg://postgres@127.0.0.1:5432/postgres]
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
import uuid
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from gen_coco import generate
from repo.exporting import export_dataset
from repo.history import commit
from repo.importing import import_dataset
from repo.project import Project
from repo.sources import update_source


def database_size(project: Project) -> int:
    """Bytes the database occupies: the SQLite file (after a checkpoint), or pg_database_size."""
    with project.engine.connect() as connection:
        if connection.dialect.name == "sqlite":
            connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
            pages = connection.exec_driver_sql("PRAGMA page_count").scalar_one()
            return pages * connection.exec_driver_sql("PRAGMA page_size").scalar_one()
        return connection.execute(text("SELECT pg_database_size(current_database())")).scalar_one()


def export_seconds(project: Project, out: Path, rev: str | None) -> float:
    shutil.rmtree(out, ignore_errors=True)
    started = time.perf_counter()
    export_dataset(project, "coco_instances", out, rev=rev)
    return time.perf_counter() - started


def rewrite_a_tenth(source: Path, target: Path, round_: int) -> None:
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(source, target)
    path = target / "annotations" / "instances_val2017.json"
    document = json.loads(path.read_text())
    for annotation in document["annotations"][round_ % 10::10]:
        annotation["bbox"][0] += round_
    path.write_text(json.dumps(document))


def measure(label: str, data: Path, changed: Path, project_dir: Path, url: str | None, history: int) -> None:
    project = Project.create(project_dir, url)
    started = time.perf_counter()
    import_dataset(project, "coco_instances", data, name="src")
    commit(project, "import")
    before = database_size(project)
    changes = update_source(project, "src", changed).changes
    assert changes.changed == {"annotations": 1} and not (changes.added or changes.removed), changes
    commit(project, "one bbox")
    after = database_size(project)
    growth = after - before
    print(f"{label:<10} before {before / 1e6:8.2f} MB  after {after / 1e6:8.2f} MB  "
          f"growth {growth:>8} bytes = {100 * growth / before:.4f}%  ({time.perf_counter() - started:.1f} s)")
    out = project_dir.parent / f"{label}-export"
    fresh = [export_seconds(project, out, rev) for rev in (None, "HEAD")]
    for round_ in range(1, history + 1):
        rewrite_a_tenth(changed, project_dir.parent / "round", round_)
        update_source(project, "src", project_dir.parent / "round")
        commit(project, f"round {round_}")
    aged = [export_seconds(project, out, rev) for rev in (None, "HEAD")]
    print(f"{label:<10} export working/HEAD: {fresh[0]:.2f}/{fresh[1]:.2f} s with 2 revisions, "
          f"{aged[0]:.2f}/{aged[1]:.2f} s after {history} more (database {database_size(project) / 1e6:.1f} MB)")
    project.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--pg-url", help="an admin URL; a throw-away database is created there")
    parser.add_argument("--history", type=int, default=10, help="revisions to pile up before timing reads again")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="dsrepo-growth-") as scratch:
        root = Path(scratch)
        data = root / "data"
        generate(data, images=args.images, seed=1, tasks=["instances"])
        changed = root / "changed"
        shutil.copytree(data, changed)
        path = changed / "annotations" / "instances_val2017.json"
        document = json.loads(path.read_text())
        document["annotations"][len(document["annotations"]) // 2]["bbox"][0] += 1.0
        path.write_text(json.dumps(document))
        measure("sqlite", data, changed, root / "sqlite", None, args.history)
        if args.pg_url:
            name = f"growth_{uuid.uuid4().hex[:8]}"
            admin = create_engine(args.pg_url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
            with admin.connect() as connection:
                connection.execute(text(f'CREATE DATABASE "{name}"'))
            try:
                url = make_url(args.pg_url).set(database=name).render_as_string(hide_password=False)
                measure("postgresql", data, changed, root / "pg", url, args.history)
            finally:
                with admin.connect() as connection:
                    connection.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))


if __name__ == "__main__":
    main()
