"""Fixtures shared by the test modules: a headless Debian chromium and the shipped model (once per session),
an empty store, and apps built by create_app (make_app, app, client, runner)."""

from __future__ import annotations

import pytest

# The helper modules hold asserts the tests used to make themselves (wait_done, set_running): rewritten
# like the tests' own, a failing one shows its values.
pytest.register_assert_rewrite("tests.helpers", "tests.jobs_helpers", "tests.media_helpers", "tests.report_helpers",
                               "tests.training_helpers", "tests.web_helpers")

from tests.helpers import CHROMIUM, SHIPPED_MODEL, FakePredictor, tiny_model_file  # noqa: E402  (after the registration above)


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


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """A tiny Mask R-CNN file with random weights (tests.helpers.tiny_model_file: classes top and jeans, score
    threshold 0), made once per module: cheap inference for tests about everything but detection."""
    return tiny_model_file(tmp_path_factory.mktemp("model") / "tiny.pt", ("top", "jeans"))


# ---- a store and the app ----------------------------------------------------------------------------

@pytest.fixture
def store(tmp_path):
    """An empty SQLite store, schema applied, laid out as an instance folder: tmp_path/closetai.sqlite and
    tmp_path/media. A module that needs rows in it overrides this fixture, asking for it by name."""
    from closetai.storage.store import Store, default_sqlite_url

    s = Store(default_sqlite_url(tmp_path), tmp_path / "media")
    s.init_schema()
    yield s
    s.dispose()


@pytest.fixture
def predictor():
    """make_app's model when a test passes none: FakePredictor. A module that wants another stand-in, or
    the shipped model, overrides this fixture."""
    return FakePredictor()


@pytest.fixture
def make_app(tmp_path, predictor):
    """make_app(predictor=None, **config): an app in testing mode on its own instance folder (tmp_path /
    "instance", then "instance1", "instance2", ...), job progress written at once; every app made is
    stopped (its job runner) after the test."""
    from app import create_app

    default_predictor = predictor
    apps = []

    def make(predictor=None, **config):
        instance = tmp_path / (f"instance{len(apps)}" if apps else "instance")
        app = create_app({"TESTING": True, "PREDICTOR": default_predictor if predictor is None else predictor,
                          "INSTANCE_PATH": instance, "JOB_PROGRESS_INTERVAL_S": 0.0, **config})
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.extensions["closetai.jobs.runner"].stop(timeout=30)


@pytest.fixture
def app(make_app):
    return make_app()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()
