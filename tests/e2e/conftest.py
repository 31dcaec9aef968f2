from __future__ import annotations

import os

import pytest

from tests.e2e.browser import chromium_path


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    reason = None
    if chromium_path() is None:
        reason = "NO BROWSER: chromium is not installed and could not be installed (apt-get install chromium)"
    else:
        try:
            import playwright  # noqa: F401
        except ImportError:
            reason = "NO BROWSER DRIVER: python playwright is not installed (pip install -r requirements-test.txt)"
    if reason is None:
        return
    if os.environ.get("CI") == "true" and os.environ.get("LLMGA_ALLOW_NO_BROWSER") != "1":
        raise pytest.UsageError(reason)  # in CI a missing browser is a set-up bug, never a silent skip
    print(f"\n!!! {reason}: the browser tests are skipped !!!\n")
    for item in items:
        if "e2e" in str(item.fspath):
            item.add_marker(pytest.mark.skip(reason=reason))
