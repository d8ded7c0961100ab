"""A Spark standalone cluster on loopback, started from the pyspark install, and spark-submit run as a user runs it.

Why: local mode runs the driver and every task in one JVM with the developer's Python, which hides what a cluster
does to the job: executors in other JVMs start their own Python workers, unpickle the pandas UDFs and must import
the project from what `--py-files` shipped; Delta arrives through `--jars`; the session must take its master from
spark-submit. tests/test_cluster.py drives all of that through the helpers below.

The cluster's Python is a venv that sees the project venv's third-party packages but not the project (the project
venv has it installed in editable mode, which would silently stand in for a missing `--py-files`).

Every process started here runs in its own session (process group); `StandaloneCluster.stop` and `submit` end
those groups, and only those, also when something failed.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import pyspark

REPO = Path(__file__).resolve().parent.parent
DRIVER = REPO / "cluster" / "driver.py"


def spark_home() -> Path:
    """The pyspark install: it carries bin/spark-class and bin/spark-submit of the exact Spark the project pins."""
    return Path(pyspark.__file__).resolve().parent


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (the OS picks it; the tiny race is acceptable for a test)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def tail(path: Path, lines: int = 40) -> str:
    """The last `lines` lines of a log file, headed by its name, for failure messages."""
    if not path.is_file():
        return f"--- {path}: (no file)"
    text = path.read_text(encoding="utf-8", errors="replace").splitlines()
    return f"--- {path} (last {min(lines, len(text))} of {len(text)} lines)\n" + "\n".join(text[-lines:])


def cluster_python(target: Path) -> Path:
    """A Python for the cluster: the project venv's dependencies (pyspark, pandas, pyarrow, ...) but not the project.

    A venv without pip (instant) whose only site-packages entry is a .pth line naming the project venv's
    site-packages: a path line adds that folder to sys.path without running the .pth files inside it, so the
    editable install's import hook for `jobs` and `transforms` stays out.
    """
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(target)], check=True, capture_output=True)
    python = target / "bin" / "python"
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             check=True, capture_output=True, text=True).stdout.strip()
    Path(purelib, "telco_ra_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n", encoding="utf-8")
    return python


def build_code_zip(out_dir: Path) -> Path:
    """Build the project's wheel as a user would (`pip wheel --no-deps .`) and return it under a .zip name.

    The sources are copied first so the build leaves no build/ or egg-info in the working tree. Spark 4.0 puts
    only .zip, .egg and .jar files given to `--py-files` on the executors' Python path (pyspark's
    SparkContext.PACKAGE_EXTENSIONS) and merely copies a .whl; a wheel is a zip of the packages, so the same
    artifact ships under a .zip name.
    """
    src = out_dir / "src"
    src.mkdir(parents=True)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, src / name)
    for package in ("jobs", "transforms"):
        shutil.copytree(REPO / package, src / package, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    wheels = out_dir / "wheels"
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", str(src), "-w", str(wheels)],
                          capture_output=True, text=True, check=False)
    built = sorted(wheels.glob("telco_ra-*.whl"))
    if proc.returncode != 0 or not built:
        raise RuntimeError(f"pip wheel of the project failed (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    code_zip = out_dir / built[0].name.replace("-py3-none-any.whl", ".zip")
    shutil.copyfile(built[0], code_zip)
    return code_zip


def _stop_group(proc: subprocess.Popen[Any], grace_s: float = 15.0) -> None:
    """End the process group `proc` leads (it was started with start_new_session): TERM, then KILL after grace_s."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=grace_s)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=grace_s)
    # Children that outlived their leader (an executor, a Python worker) are still in the group.
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


@dataclass
class StandaloneCluster:
    """One master and `workers` workers bound to 127.0.0.1, their work and log folders under `root`.

    Example::

        cluster = StandaloneCluster(tmp_path / "cluster", python=cluster_python(tmp_path / "py"))
        cluster.start()
        try:
            cluster.wait_ready()
            ...   # spark-submit --master cluster.master_url
        finally:
            cluster.stop()
    """

    root: Path
    python: Path
    workers: int = 2
    cores: int = 1
    memory: str = "1g"
    daemon_memory: str = "256m"   # heap of the master and worker daemons themselves: they only schedule
    daemon_java_opts: str = "-XX:TieredStopAtLevel=1"   # C1 only: short-lived daemons, see QUICK_JVM
    master_port: int = field(default_factory=free_port)
    ui_port: int = field(default_factory=free_port)
    processes: list[tuple[str, subprocess.Popen[bytes]]] = field(default_factory=list)
    _logs: list[IO[bytes]] = field(default_factory=list)

    @property
    def master_url(self) -> str:
        return f"spark://127.0.0.1:{self.master_port}"

    def env(self) -> dict[str, str]:
        """The environment of the daemons, and through the workers of the executors they launch."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SPARK_", "PYSPARK_")) and k != "PYTHONPATH"}
        conf_dir = self.root / "conf"          # empty: no spark-defaults.conf of the machine leaks in
        conf_dir.mkdir(parents=True, exist_ok=True)
        env.update({
            "SPARK_HOME": str(spark_home()), "SPARK_CONF_DIR": str(conf_dir), "SPARK_LOCAL_IP": "127.0.0.1",
            "SPARK_LOG_DIR": str(self.root / "logs"), "SPARK_DAEMON_MEMORY": self.daemon_memory,
            "SPARK_DAEMON_JAVA_OPTS": self.daemon_java_opts,
            "PYSPARK_PYTHON": str(self.python), "TZ": "UTC",
        })
        return env

    def _launch(self, name: str, args: Sequence[str], extra_env: Mapping[str, str] | None = None) -> None:
        log_path = self.root / "logs" / f"{name}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        log = log_path.open("wb")
        self._logs.append(log)
        env = {**self.env(), **(extra_env or {})}
        proc = subprocess.Popen([str(spark_home() / "bin" / "spark-class"), *args], stdout=log,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, cwd=self.root,
                                start_new_session=True)
        self.processes.append((name, proc))

    def start(self) -> None:
        """Launch master and workers and return at once (workers retry until the master listens): wait_ready waits."""
        self.root.mkdir(parents=True, exist_ok=True)
        self._launch("master", ["org.apache.spark.deploy.master.Master", "--host", "127.0.0.1",
                                "--port", str(self.master_port), "--webui-port", str(self.ui_port)])
        for i in range(1, self.workers + 1):
            work = self.root / f"worker-{i}"
            work.mkdir(parents=True, exist_ok=True)
            self._launch(f"worker-{i}", ["org.apache.spark.deploy.worker.Worker", "--host", "127.0.0.1",
                                         "--port", "0", "--webui-port", "0", "--cores", str(self.cores),
                                         "--memory", self.memory, "--work-dir", str(work), self.master_url],
                         {"SPARK_WORKER_DIR": str(work)})

    def state(self) -> dict[str, Any]:
        """The master's own summary (its web UI's /json): status, alive workers, running and completed apps."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.ui_port}/json", timeout=5) as response:
            data: dict[str, Any] = json.load(response)
        return data

    def logs(self) -> str:
        return "\n".join(tail(self.root / "logs" / f"{name}.log") for name, _ in self.processes)

    def wait_ready(self, timeout_s: float = 180.0) -> None:
        """Block until the master is ALIVE with every worker registered; else raise with each daemon's log tail."""
        deadline = time.monotonic() + timeout_s
        last = "master web UI not answering yet"
        while time.monotonic() < deadline:
            dead = [f"{name} exited with {proc.returncode}" for name, proc in self.processes if proc.poll() is not None]
            if dead:
                raise RuntimeError(f"standalone cluster did not come up: {'; '.join(dead)}\n{self.logs()}")
            try:
                state = self.state()
                alive = state.get("aliveworkers", 0)
                if state.get("status") == "ALIVE" and alive >= self.workers:
                    return
                last = f"master {state.get('status')}, {alive} of {self.workers} workers registered"
            except (urllib.error.URLError, OSError, ValueError) as exc:
                last = f"master web UI not answering: {exc}"
            time.sleep(1)
        raise RuntimeError(f"standalone cluster at {self.master_url} not ready after {timeout_s:.0f} s ({last})\n"
                           f"{self.logs()}")

    def executor_dirs(self, app_id: str) -> list[Path]:
        """The folders the workers gave the executors of `app_id` (work-dir/app-id/executor-id)."""
        return sorted(p for i in range(1, self.workers + 1) for p in (self.root / f"worker-{i}" / app_id).glob("*"))

    def stop(self) -> None:
        """End the workers (and with them their executors), then the master; safe to call twice or after a failure."""
        for _, proc in reversed(self.processes):
            _stop_group(proc)
        for log in self._logs:
            log.close()
        self.processes.clear()
        self._logs.clear()


# JVM options for a test-sized job on a small shared box, not for production: the driver and executors live a
# minute or two, and with C2 (the default top JIT tier) most of their CPU went to compiling code that then ran a few
# times (measured on 2 cores: the cluster run used 209 s of CPU, 98 s with C1 only; wall 166 s -> 87 s). Results do
# not depend on the JIT. -Duser.timezone=UTC is repeated because a spark-submit --conf replaces telco-ra's default
# for the same key (jobs/session.py).
QUICK_JVM: dict[str, str] = {
    "spark.driver.extraJavaOptions": "-Duser.timezone=UTC -XX:TieredStopAtLevel=1",
    "spark.executor.extraJavaOptions": "-Duser.timezone=UTC -XX:TieredStopAtLevel=1",
}


def submit_command(master: str, code_zip: Path, jars: Sequence[Path], python: Path, app_args: Sequence[str],
                   name: str = "telco-ra", executor_memory: str = "768m", total_cores: int = 2,
                   conf: Mapping[str, str] | None = None) -> list[str]:
    """The spark-submit command line a user types for their cluster (README, "Running on a cluster")."""
    extra = [arg for key, value in (conf or {}).items() for arg in ("--conf", f"{key}={value}")]
    return [
        str(spark_home() / "bin" / "spark-submit"),
        "--master", master, "--deploy-mode", "client", "--name", name,
        "--driver-memory", "1g", "--executor-memory", executor_memory,
        "--total-executor-cores", str(total_cores), "--executor-cores", "1",
        "--jars", ",".join(str(j) for j in jars),
        "--py-files", str(code_zip),
        "--conf", f"spark.pyspark.python={python}", "--conf", f"spark.pyspark.driver.python={python}", *extra,
        str(DRIVER), *app_args,
    ]


@dataclass(frozen=True)
class Submitted:
    returncode: int
    log: Path
    seconds: float


class Submission:
    """spark-submit running in the background in its own process group, its output in `log`.

    Background so that the test's local run can use the cores while the cluster run waits on scheduling and
    executors (both are latency-bound on tiny data). `stop` ends the group: call it in a finally.
    """

    def __init__(self, command: Sequence[str], env: Mapping[str, str], cwd: Path, log: Path) -> None:
        self.log, self.started = log, time.monotonic()
        self._out = log.open("wb")
        self.proc = subprocess.Popen(list(command), stdout=self._out, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, env=dict(env), cwd=cwd, start_new_session=True)

    def wait(self, timeout_s: float) -> Submitted:
        """Wait for spark-submit to exit (returncode -1 on timeout, after ending it)."""
        try:
            returncode = self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            returncode = -1
        self.stop()
        return Submitted(returncode, self.log, time.monotonic() - self.started)

    def stop(self) -> None:
        _stop_group(self.proc, grace_s=10.0)
        self._out.close()
