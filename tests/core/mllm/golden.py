"""Paths and loaders of the MLLM golden data (produced from the original code; see PROVENANCE.md)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

GOLDEN = Path(__file__).resolve().parents[2] / "golden" / "mllm"


def load_json(name: str) -> Any:
    return json.loads((GOLDEN / name).read_text(encoding="utf-8"))
