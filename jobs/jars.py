"""Delta Lake's JVM jars: where they are cached and how they are fetched.

No Python wheel carries Delta's jars. Spark's own resolver (Ivy, `spark.jars.packages`) is fragile on machines
whose `~/.m2` holds POMs without jars, or that reach Maven Central only through Maven's own settings (mirrors,
proxies). So telco-ra fetches the exact artifacts once with Maven (`mvn dependency:copy`, which honours
`~/.m2/settings.xml`), falls back to Ivy where Maven is absent, caches the jars in one folder and hands them to
Spark with `spark.jars`. A cluster that already provides Delta sets `delta.provided: true` in conf instead.

    python -m jobs.jars            # fetch into the cache (idempotent), print the jar paths
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

LOG = logging.getLogger(__name__)

DELTA_VERSION = "4.0.1"
SCALA_BINARY = "2.13"
ARTIFACTS: tuple[tuple[str, str, str], ...] = (
    ("io.delta", f"delta-spark_{SCALA_BINARY}", DELTA_VERSION),
    ("io.delta", "delta-storage", DELTA_VERSION),
)


class JarsUnavailable(RuntimeError):
    """Delta's jars are not cached and could not be fetched; the message is one line a user can act on."""


def cache_dir() -> Path:
    """The jar cache: `$TELCO_RA_JAR_CACHE`, else `~/.cache/telco-ra/jars` (shared by every clone on a machine)."""
    env = os.environ.get("TELCO_RA_JAR_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "telco-ra" / "jars"


def jar_names() -> list[str]:
    return [f"{artifact}-{version}.jar" for _, artifact, version in ARTIFACTS]


def maven_coordinates() -> list[str]:
    return [f"{group}:{artifact}:{version}" for group, artifact, version in ARTIFACTS]


def cached_jars() -> list[Path] | None:
    """The cached jar paths when every one is present (and non-empty), else None."""
    paths = [cache_dir() / name for name in jar_names()]
    return paths if all(p.is_file() and p.stat().st_size > 0 for p in paths) else None


def _fetch_with_maven(target: Path) -> str | None:
    """Copy each artifact with Maven; returns None on success, else the reason in one line."""
    mvn = shutil.which("mvn")
    if mvn is None:
        return "mvn not on PATH"
    for coordinate in maven_coordinates():
        cmd = [mvn, "-q", "-B", "dependency:copy", f"-Dartifact={coordinate}", f"-DoutputDirectory={target}"]
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=tempfile.gettempdir(), check=False)
        if proc.returncode != 0:
            last = [line for line in (proc.stdout + proc.stderr).splitlines() if "ERROR" in line][:1]
            return f"mvn dependency:copy {coordinate} failed ({last[0].strip()[:160] if last else proc.returncode})"
    return None


def _fetch_with_ivy(target: Path) -> str | None:
    """Resolve through Spark's Ivy in a throwaway JVM and copy the resolved Delta jars into the cache."""
    ivy_home = target.parent / "ivy"
    code = (
        "from pyspark.sql import SparkSession\n"
        f"s = SparkSession.builder.master('local[1]').config('spark.jars.packages', {','.join(maven_coordinates())!r})"
        f".config('spark.jars.ivy', {str(ivy_home)!r}).config('spark.ui.enabled', 'false').getOrCreate()\n"
        "s.stop()\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        return "Spark's Ivy resolver could not fetch them either"
    for name in jar_names():
        found = sorted((ivy_home / "jars").glob(f"*{name}"))
        if not found:
            return f"Ivy resolved but {name} is not in {ivy_home / 'jars'}"
        shutil.copyfile(found[0], target / name)
    return None


def ensure_jars() -> list[Path]:
    """Return the cached Delta jars, fetching them first if needed.

    Raises JarsUnavailable with a one-line message when neither Maven nor Ivy can get them.
    """
    cached = cached_jars()
    if cached:
        return cached
    target = cache_dir()
    target.mkdir(parents=True, exist_ok=True)
    reasons = []
    for fetch in (_fetch_with_maven, _fetch_with_ivy):
        reason = fetch(target)
        if reason is None and cached_jars():
            LOG.info("Delta jars cached in %s", target)
            return cached_jars() or []
        reasons.append(reason or f"{fetch.__name__} left the cache incomplete")
    raise JarsUnavailable(
        f"cannot get Delta Lake jars {', '.join(maven_coordinates())} from Maven Central ({'; '.join(reasons)}); "
        f"put {', '.join(jar_names())} in {target} (or set TELCO_RA_JAR_CACHE) and retry"
    )


def main() -> int:
    try:
        for path in ensure_jars():
            sys.stdout.write(f"{path}\n")
    except JarsUnavailable as exc:
        sys.stderr.write(f"telco-ra: {exc}\n")
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
