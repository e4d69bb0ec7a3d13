"""dsrepo at scale: one big instances file through import, export, a per-label query and a
filtered export, on SQLite and PostgreSQL, with wall time and peak memory of each command.

The figures that matter at train2017's size (118,000 images, ~850,000 annotations, 576 MB) are
whether memory stays bounded as the file grows, so give several sizes of the same generated
data (scripts/gen_coco.py --tasks instances --images N). Every export is checked lossless: the
canonical dump of the exported file (keys sorted) has the same SHA-256 as the input's. The
query plans of the per-label query and of the filter's selection are printed once per database.

Usage: python scripts/bench_scale.py FILE.json [FILE.json ...] [--pg-url ADMIN_URL] [--label person]
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import orjson
import sqlalchemy as sa

from bench import Postgres, Step, run_child

LABEL_QUERY = "SELECT label, count(*) FROM annotations_v GROUP BY label"


def digest(path: Path) -> str:
    """SHA-256 of the file's canonical form: equal for equal JSON whatever the key order or spacing."""
    gc.disable()
    try:
        return hashlib.sha256(orjson.dumps(orjson.loads(path.read_bytes()), option=orjson.OPT_SORT_KEYS)).hexdigest()
    finally:
        gc.enable()


def dsrepo(*args: str) -> Step:
    child = run_child([sys.executable, "-m", "repo.cli", *args, "--quiet"], {})
    if child.status != 0:
        raise RuntimeError(f"dsrepo {args[0]} failed ({child.status}): {child.stderr.strip()}")
    return child.step


def plans(url: str, where: str) -> list[str]:
    """The database's plan for the per-label query and for the filter's selection."""
    engine = sa.create_engine(url)
    explain = "EXPLAIN QUERY PLAN" if engine.dialect.name == "sqlite" else "EXPLAIN"
    selection = f"SELECT row_id FROM annotations_v WHERE {where}"
    lines = []
    with engine.connect() as connection:
        for sql in (LABEL_QUERY, selection):
            lines.append(f"  {explain} {sql}")
            lines += [f"    {' | '.join(str(v) for v in row)}" for row in connection.exec_driver_sql(f"{explain} {sql}")]
    engine.dispose()
    return lines


def measure(path: Path, backend: str, work: Path, pg: Postgres | None, where: str) -> tuple[list[str], list[str]]:
    project, out, filtered = work / "project", work / "export", work / "filtered"
    name = f"bench_scale_{path.stem}_{len(str(work))}"
    url = pg.create(name) if pg else None
    try:
        create = dsrepo("create", "-p", str(project), *(["--db", url] if url else []))
        imported = dsrepo("import", "-p", str(project), "-f", "coco_instances", str(path.parent.parent),
                          "-r", f"{path.parent.name}/{path.name}")
        exported = dsrepo("export", "-p", str(project), "-f", "coco_instances", "-o", str(out))
        lossless = "OK" if digest(next((out / "annotations").iterdir())) == digest(path) else "MISMATCH"
        shutil.rmtree(out)
        query = min((dsrepo("query", "-p", str(project), LABEL_QUERY) for _ in range(3)), key=lambda s: s.seconds)
        selected = dsrepo("export", "-p", str(project), "-f", "coco_instances", "-o", str(filtered), "--where", where)
        plan = plans(url or f"sqlite:///{project / 'project.db'}", where)
    finally:
        if pg:
            pg.drop(name)
        shutil.rmtree(work, ignore_errors=True)
    row = [path.name, f"{path.stat().st_size / 2**20:.0f}", backend,
           f"{create.seconds:.1f}", f"{imported.seconds:.1f}", f"{imported.peak_mb:.0f}",
           f"{exported.seconds:.1f}", f"{exported.peak_mb:.0f}", f"{query.seconds:.2f}",
           f"{selected.seconds:.1f}", f"{selected.peak_mb:.0f}", lossless]
    return row, plan


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("files", type=Path, nargs="+")
    parser.add_argument("--pg-url", help="PostgreSQL admin URL: also measure on a fresh database there")
    parser.add_argument("--label", default="person", help="the label of the filtered export (default person)")
    args = parser.parse_args(argv)
    pg = Postgres(args.pg_url) if args.pg_url else None
    where = f"label = '{args.label}'"
    header = ["file", "MB", "database", "create s", "import s", "import MB", "export s", "export MB",
              "query s", "--where s", "--where MB", "lossless"]
    rows, shown = [header], {}
    temp = Path(tempfile.mkdtemp(prefix="dsrepo-scale-"))
    try:
        for path in args.files:
            for backend in ["sqlite"] + (["postgresql"] if pg else []):
                row, plan = measure(path, backend, temp / f"{path.stem}-{backend}", pg if backend != "sqlite" else None,
                                    where)
                rows.append(row)
                print("  ".join(row), flush=True)
                shown[backend] = plan
    finally:
        shutil.rmtree(temp, ignore_errors=True)
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    print()
    print("\n".join("  ".join(cell.rjust(w) if 0 < i < len(row) - 1 else cell.ljust(w)
                              for i, (cell, w) in enumerate(zip(row, widths))) for row in rows))
    print(f"\nquery: dsrepo query \"{LABEL_QUERY}\" (whole process, best of 3); --where: export --where \"{where}\"")
    for backend, plan in shown.items():
        print(f"\nPlans on {backend} (last file):")
        print("\n".join(plan))
    return 0


if __name__ == "__main__":
    sys.exit(main())
