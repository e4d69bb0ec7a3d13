"""Writing the JSON reports a user asks for (skipped records, merge conflicts, reindex maps)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from repo.errors import OutputError


def write_json_report(path: Path, document: Any) -> None:
    """Write `document` as indented JSON; a path that cannot be written is an OutputError."""
    try:
        path.write_text(json.dumps(document, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    except OSError as exc:
        raise OutputError(f"{path}: cannot be written ({exc.strerror or exc})") from None
