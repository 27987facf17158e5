"""closetai.one_malloc_arena: applied on glibc Linux, left to the environment when it already chose."""

from __future__ import annotations

import sys

import pytest

from closetai import one_malloc_arena


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc only")
def test_one_arena_unless_the_environment_chose(monkeypatch):
    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    assert one_malloc_arena() is True
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    assert one_malloc_arena() is False
