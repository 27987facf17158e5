"""Fixtures shared by the browser tests: one headless Debian chromium per session."""

from __future__ import annotations

import pytest

# The helper modules hold asserts the tests used to make themselves (wait_done, set_running): rewritten
# like the tests' own, a failing one shows its values.
pytest.register_assert_rewrite("tests.helpers", "tests.jobs_helpers", "tests.media_helpers", "tests.report_helpers",
                               "tests.training_helpers", "tests.web_helpers")

from tests.helpers import CHROMIUM, SHIPPED_MODEL  # noqa: E402  (after the registration above)


@pytest.fixture(scope="session")
def browser():
    if not CHROMIUM.exists():
        pytest.skip("needs Debian chromium at /usr/bin/chromium (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                               args=["--no-sandbox", "--disable-background-networking", "--disable-gpu"])
        yield b
        b.close()


@pytest.fixture(scope="session")
def shipped_predictor():
    """The shipped model, loaded once for every test module that wants it (on the CPU)."""
    if not SHIPPED_MODEL.is_file():
        pytest.skip("models/closetai-ccp15.pt not present")
    from closetai.vision.predict import Predictor

    return Predictor(device="cpu")
