"""Where a benchmark's numbers go: printed as JSON, and written to ``--json PATH`` when one is given."""

from __future__ import annotations

import json
from pathlib import Path


def emit_json(payload: dict, path: Path | None) -> None:
    """Print ``payload`` as indented JSON and, when ``path`` is set, write the same text there (parents created)."""
    text = json.dumps(payload, indent=2)
    print(text)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text + "\n")
