"""Delta's jars: cached once, and a clear one-line message when they cannot be had."""

from __future__ import annotations

from pathlib import Path

import pytest

from jobs import jars


def test_cached_jars_are_the_pinned_artifacts() -> None:
    paths = jars.ensure_jars()      # `make test` fetched them; this only reads the cache
    assert [p.name for p in paths] == ["delta-spark_2.13-4.0.1.jar", "delta-storage-4.0.1.jar"]
    assert all(p.stat().st_size > 10_000 for p in paths)


def test_unobtainable_jars_fail_with_one_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # A version that does not exist: Maven and Ivy both really try, and both really fail.
    monkeypatch.setattr(jars, "ARTIFACTS", (("io.delta", "delta-spark_2.13", "0.0.0-does-not-exist"),))
    monkeypatch.setenv("TELCO_RA_JAR_CACHE", str(tmp_path / "jars"))
    with pytest.raises(jars.JarsUnavailable) as err:
        jars.ensure_jars()
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith("cannot get Delta Lake jars io.delta:delta-spark_2.13:0.0.0-does-not-exist")
    assert "TELCO_RA_JAR_CACHE" in message
