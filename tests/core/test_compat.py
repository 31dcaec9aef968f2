"""The version gate of nodes/_compat.py (the host tier checks the feature detection on real hosts)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[2]


def load_compat():
    spec = importlib.util.spec_from_file_location("llmga_compat_under_test", ROOT / "nodes" / "_compat.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # no ComfyUI on this path: every newer feature reads as absent
    return module


def test_versions_parse_like_comfyui_writes_them() -> None:
    compat = load_compat()
    assert compat.parse_version("0.3.64") == (0, 3, 64)
    assert compat.parse_version("v0.30.0") == (0, 30, 0)
    assert compat.parse_version("0.18.2+local") == (0, 18, 2)
    assert compat.parse_version("unknown") is None
    assert compat.parse_version(None) is None


def test_the_gate_lets_the_range_through_and_names_the_version_needed() -> None:
    compat = load_compat()
    for ok in ("0.3.64", "0.3.65", "0.16.3", "0.18.2", "0.30.0", "1.0.0", None, "dev"):
        assert compat.too_old_message(ok, has_v3_api=True) is None, ok
    old = compat.too_old_message("0.3.40", has_v3_api=True)
    assert old.startswith("ComfyUI-LLMGA needs ComfyUI >= 0.3.64, this is ComfyUI 0.3.40: update ComfyUI")
    no_api = compat.too_old_message("0.3.30", has_v3_api=False)
    assert "no comfy_api.latest node API" in no_api and ">= 0.3.64" in no_api
    assert "without a version number" in compat.too_old_message(None, has_v3_api=False)


def test_without_a_host_no_newer_feature_is_claimed() -> None:
    compat = load_compat()
    assert compat.ADVANCED == {} and not compat.INPUT_ADVANCED
    assert not compat.DYNAMIC_COMBO and not compat.SEARCH_ALIASES


def test_the_gate_matches_what_pyproject_and_readme_claim() -> None:
    compat = load_compat()
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert config["tool"]["comfy"]["requires-comfyui"] == f">={compat.OLDEST_COMFYUI}"
    assert f"ComfyUI {compat.OLDEST_COMFYUI}" in (ROOT / "README.md").read_text()
