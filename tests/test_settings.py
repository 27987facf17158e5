"""One place reads the CLOSETAI_* settings (closetai.settings), and every entry point sees the same."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from closetai import settings
from closetai.jobs.runner import VideoSettings
from tests.helpers import REPO, FakePredictor

VIDEO_ENV = {"CLOSETAI_VIDEO_FPS": "2.5", "CLOSETAI_VIDEO_MIN_SIZE": "384", "CLOSETAI_VIDEO_MAX_DURATION_S": "123",
             "CLOSETAI_VIDEO_MAX_PIXELS": "1000000", "CLOSETAI_VIDEO_SHOT_CUTS": "0", "CLOSETAI_VIDEO_REID": "off"}


def _video_fields(v: VideoSettings) -> tuple:
    return v.fps, v.min_size, v.limits.max_duration_s, v.limits.max_pixels, v.shot_cuts, v.reid


def test_web_app_workers_and_ingest_analyse_clips_with_the_same_settings(tmp_path, monkeypatch):
    """Before closetai.settings the web app and workers refused clips over 300 s while `closetai ingest`
    took 600 s and ignored the rate, the cut and the re-identification switches."""
    for var, value in VIDEO_ENV.items():
        monkeypatch.setenv(var, value)
    monkeypatch.setenv("CLOSETAI_INSTANCE", str(tmp_path / "instance"))
    from app import create_app
    from closetai import cli
    from closetai.jobs import worker
    from closetai.vision import predict

    app = create_app({"TESTING": True, "PREDICTOR": FakePredictor(), "REPORT_CHART_PROCESS": False})
    web = app.extensions["closetai.video_settings"]
    monkeypatch.setattr(predict, "Predictor", lambda *a, **k: FakePredictor())
    monkeypatch.setattr(worker, "_context", None)
    on_worker = worker.worker_context().video
    expected = (2.5, 384, 123.0, 1_000_000, False, False)
    assert _video_fields(web) == _video_fields(on_worker) == _video_fields(cli.video_settings()) == expected
    monkeypatch.delenv("CLOSETAI_VIDEO_MAX_DURATION_S")
    assert cli.video_settings().limits.max_duration_s == 300.0  # the default: the same everywhere too
    app.extensions["closetai.jobs.runner"].stop(timeout=10)


def test_a_bad_value_is_one_line_naming_the_variable(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "CLOSETAI_VIDEO_FPS": "fast", "CLOSETAI_INSTANCE": str(tmp_path)}
    out = subprocess.run([sys.executable, "-m", "closetai", "ingest", str(tmp_path)], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == ["closetai: error: CLOSETAI_VIDEO_FPS='fast' is not a valid float"]
    with pytest.raises(SystemExit, match="CLOSETAI_VIDEO_FPS='fast' is not a valid float"):
        import os

        from app import create_app

        os.environ["CLOSETAI_VIDEO_FPS"] = "fast"
        try:
            create_app({"TESTING": True, "PREDICTOR": FakePredictor()})
        finally:
            del os.environ["CLOSETAI_VIDEO_FPS"]


def test_no_other_module_reads_a_closetai_variable():
    readers = []
    for path in [REPO / "app.py", *sorted((REPO / "closetai").rglob("*.py"))]:
        if path.name == "settings.py":
            continue
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if re.search(r"environ(\.get)?[\[(]\s*[\"']CLOSETAI_", line):
                readers.append(f"{path.relative_to(REPO)}:{n}")
    assert not readers, readers


def test_every_setting_appears_once_and_the_readme_table_is_the_generated_one():
    envs = [s.env for s in settings.SETTINGS]
    assert len(envs) == len(set(envs)) and len({s.key for s in settings.SETTINGS}) == len(envs)
    assert settings.markdown_table() in (REPO / "README.md").read_text()
    out = subprocess.run([sys.executable, "-m", "closetai", "settings"], cwd=REPO, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == settings.markdown_table()


def test_values_in_effect_hide_secrets(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "CLOSETAI_PASSWORD": "hunter2-hunter2", "CLOSETAI_PORT": "8123"}
    out = subprocess.run([sys.executable, "-m", "closetai", "settings", "--values"], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0
    assert "CLOSETAI_PORT=8123" in out.stdout.splitlines() and "CLOSETAI_PASSWORD=(set)" in out.stdout
    assert "hunter2" not in out.stdout
