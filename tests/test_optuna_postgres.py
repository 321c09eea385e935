"""
Distributed Optuna: two zoo worker processes add trials to one study stored in PostgreSQL, then the best trial is
exported as a validated hyperparameter-file entry.

Needs a PostgreSQL server: ``scripts/start_postgres.sh`` starts one (``.ci/run`` does in CI) and prints its URL;
``SB3_REINFORCE_POSTGRES_URL`` overrides the default URL. Skipped when no server is reachable, except in CI
(``CI`` set), where that is a failure.
"""

import os
import subprocess
import sys
import uuid
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from sb3_reinforce.hyperparams import validate_hyperparams_file
from sb3_reinforce.zoo import main, normalize_storage_url
from sb3_reinforce.zoo.storage import _hide_password

pytestmark = pytest.mark.postgres

DEFAULT_URL = "postgresql://sb3_reinforce:sb3_reinforce@127.0.0.1:5432/sb3_reinforce_test"
POSTGRES_URL = os.environ.get("SB3_REINFORCE_POSTGRES_URL", DEFAULT_URL)
REPO = Path(__file__).resolve().parent.parent


def _unreachable_reason(url: str) -> str | None:
    try:
        import sqlalchemy
    except ImportError as error:  # pragma: no cover - optuna depends on sqlalchemy
        return f"sqlalchemy is not installed: {error}"
    try:
        import psycopg2  # noqa: F401
    except ImportError:
        return "psycopg2 is not installed (pip install 'sb3_reinforce[postgres]')"
    try:
        engine = sqlalchemy.create_engine(normalize_storage_url(url), connect_args={"connect_timeout": 3})
    except ImportError as error:
        return f"no PostgreSQL driver for {url}: {error}"
    try:
        with engine.connect() as connection:
            connection.execute(sqlalchemy.text("SELECT 1"))
    except Exception as error:
        name = type(error).__name__
        return f"no PostgreSQL server reachable at {_hide_password(url)} ({name}); start one with scripts/start_postgres.sh"
    finally:
        engine.dispose()
    return None


@pytest.fixture(scope="module")
def postgres_url() -> str:
    reason = _unreachable_reason(POSTGRES_URL)
    if reason is not None:
        if os.environ.get("CI"):
            pytest.fail(f"CI: {reason}")
        pytest.skip(reason)
    return POSTGRES_URL


@pytest.fixture(scope="module")
def storage(postgres_url) -> str:
    # postgresql:// means psycopg (v3) to SQLAlchemy 2.1: the zoo switches to psycopg2 when only it is installed
    return normalize_storage_url(postgres_url)


def test_two_workers_share_a_postgres_study(postgres_url, storage, tmp_path):
    study_name = f"test-reinforce-cartpole-{uuid.uuid4().hex[:8]}"
    # Recommended recipe: create the study once, then start the workers (they load it)
    optuna.create_study(study_name=study_name, storage=storage, direction="maximize")
    try:
        workers = []
        for worker in range(2):
            command = [
                sys.executable,
                "-m",
                "sb3_reinforce.zoo",
                "train",
                "--algo",
                "reinforce",
                "--env",
                "CartPole-v1",
                "-n",
                "1000",
                "-f",
                str(tmp_path / f"worker{worker}"),
                "--optimize",
                "--storage",
                postgres_url,
                "--study-name",
                study_name,
                "--n-trials",
                "1",
                "--n-evaluations",
                "2",
                "--eval-episodes",
                "2",
                "--no-optim-plots",
                "--num-threads",
                "1",
                "--seed",
                str(worker),
                "-params",
                "n_envs:2",
            ]
            log = open(tmp_path / f"worker{worker}.log", "w")  # noqa: SIM115 (closed below)
            workers.append((subprocess.Popen(command, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT), log))
        for process, log in workers:
            try:
                process.wait(timeout=240)
            finally:
                log.close()
        for worker, (process, _) in enumerate(workers):
            output = (tmp_path / f"worker{worker}.log").read_text()
            assert process.returncode == 0, output[-3000:]

        study = optuna.load_study(study_name=study_name, storage=storage)
        # one trial per worker, both in the same study
        assert len(study.trials) == 2
        assert all(trial.state in (TrialState.COMPLETE, TrialState.PRUNED) for trial in study.trials)
        assert study.user_attrs["sb3_reinforce:env_id"] == "CartPole-v1"

        output = tmp_path / "best.yml"
        main(["export-best", "--storage", postgres_url, "--study-name", study_name, "-o", str(output)])
        content = validate_hyperparams_file(output)
        entry = content["CartPole-v1"]
        assert entry["learning_rate"] == pytest.approx(study.best_trial.params["learning_rate"])
        assert entry["n_envs"] == 2
        assert f"study {study_name!r}" in output.read_text()
    finally:
        optuna.delete_study(study_name=study_name, storage=storage)


def test_the_trial_of_a_killed_worker_is_failed(storage, postgres_url, tmp_path, capsys, monkeypatch):
    """Optuna's heartbeat on PostgreSQL: a SIGKILLed worker's trial is failed by the next worker, not left RUNNING."""
    from tests.test_trust_optuna import kill_a_worker_mid_trial_then_run_another

    study_name = f"test-heartbeat-{uuid.uuid4().hex[:8]}"
    try:
        kill_a_worker_mid_trial_then_run_another(tmp_path, postgres_url, study_name, capsys, monkeypatch)
    finally:
        optuna.delete_study(study_name=study_name, storage=storage)
