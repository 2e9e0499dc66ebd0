"""A real Airflow 3 in its own virtualenv (.venv-airflow, built once and reused) and an
AIRFLOW_HOME on SQLite pointed at a Batchyard server by AWS_ENDPOINT_URL.

Airflow is only ever run as a subprocess: nothing of it is imported into the test process.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from tests.fixtures import CREDENTIALS

ROOT = Path(__file__).resolve().parents[2]
VENV = ROOT / ".venv-airflow"
REQUIREMENTS = (
    "apache-airflow>=3.0,<4",
    "apache-airflow-providers-amazon[aiobotocore]>=9.0",
)
STAMP = VENV / ".batchyard-requirements"
DAG_FILES = (Path(__file__).resolve().parent / "dags", ROOT / "examples")


def ensure_venv() -> Path:
    """The Airflow virtualenv's bin directory; installs it when missing or out of date."""
    wanted = "\n".join(REQUIREMENTS) + "\n"
    if STAMP.exists() and STAMP.read_text() == wanted and (VENV / "bin" / "airflow").exists():
        return VENV / "bin"
    if VENV.exists():
        shutil.rmtree(VENV)
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", str(VENV)], check=True)
    pip = [str(VENV / "bin" / "python"), "-m", "pip", "install", "--quiet"]
    subprocess.run([*pip, "--upgrade", "pip"], check=True, timeout=600)
    subprocess.run([*pip, *REQUIREMENTS], check=True, timeout=1200)
    STAMP.write_text(wanted)
    return VENV / "bin"


@dataclass
class AirflowHome:
    """One AIRFLOW_HOME (SQLite metadata database, DAGs folder) talking to one Batchyard."""

    bin: Path
    home: Path
    endpoint_url: str
    extra_env: dict[str, str] = field(default_factory=dict)

    def env(self, **extra: str) -> dict[str, str]:
        inherited = {
            k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "AWS_", "VIRTUAL"))
        }
        return {
            **inherited,
            **CREDENTIALS,
            "PATH": f"{self.bin}{os.pathsep}{inherited.get('PATH', '')}",
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AIRFLOW_HOME": str(self.home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(self.home / "dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
            **self.extra_env,
            **extra,
        }

    def setup(self) -> None:
        dags = self.home / "dags"
        dags.mkdir(parents=True, exist_ok=True)
        for folder in DAG_FILES:
            for dag in folder.glob("*.py"):
                shutil.copy(dag, dags / dag.name)
        self.airflow("db", "migrate", timeout=300)

    def airflow(self, *args: str, timeout: float = 600, check: bool = True) -> str:
        """Run an airflow command; its combined output."""
        done = subprocess.run(
            [str(self.bin / "airflow"), *args],
            env=self.env(),
            cwd=self.home,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and done.returncode != 0:
            raise AssertionError(
                f"airflow {' '.join(args)} exited {done.returncode}:\n{done.stdout}"
            )
        return done.stdout

    def task_states(self, dag_id: str) -> dict[str, str | None]:
        with sqlite3.connect(self.home / "airflow.db") as db:
            rows = db.execute(
                "SELECT task_id, state FROM task_instance WHERE dag_id = ?", (dag_id,)
            ).fetchall()
        return {str(task): state for task, state in rows}


def task_sections(output: str) -> dict[str, str]:
    """`airflow dags test` output cut into each task's log (between its DAG TEST markers)."""
    sections: dict[str, str] = {}
    current: str | None = None
    for line in output.splitlines():
        if "[DAG TEST] starting task_id=" in line:
            current = line.split("task_id=", 1)[1].split()[0]
            sections.setdefault(current, "")
        elif "[DAG TEST] end task task_id=" in line:
            current = None
        elif current is not None:
            sections[current] += line + "\n"
    return sections
