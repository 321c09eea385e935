"""
Training worker for ``test_kill_resume.py``, run as ``python tests/resume_worker.py CHECKPOINT_DIR SAVE_FREQ``.

It imports torch and SB3 once, then works as a fork server: for every ``run`` line read on stdin it forks a
child that loads the latest checkpoint of ``CHECKPOINT_DIR`` (or starts a new model when there is none) and
trains CartPole with a ``CheckpointCallback`` until it is killed. The test SIGKILLs the child (a real process
dying at a random moment) and asks for the next one. Lines written on stdout:

- ``pid PID``: the child of the last ``run``;
- ``resumed PATH CHECKPOINT_STEPS LOADED_STEPS`` or ``fresh``: what the child started from;
- ``continue NUM_TIMESTEPS N_ENVS``: ``num_timesteps`` after the child's first step of training;
- ``error MESSAGE``: the child failed (it exits).
"""

import contextlib
import io
import os
import re
import signal
import sys
import traceback

import torch as th

th.set_num_threads(1)

from stable_baselines3.common.callbacks import BaseCallback, CallbackList, CheckpointCallback  # noqa: E402
from stable_baselines3.common.env_util import make_vec_env  # noqa: E402

from sb3_reinforce.reinforce.reinforce import REINFORCE  # noqa: E402

CHECKPOINT_RE = re.compile(r"^rl_model_(\d+)_steps\.zip$")
N_ENVS = 2


def latest_checkpoint(directory: str) -> tuple[str, int] | None:
    """
    The checkpoint with the most steps in ``directory`` (temporary files of interrupted saves are ignored).

    :param directory: the CheckpointCallback's folder
    :return: its path and step count, or None
    """
    found = [(int(match.group(1)), name) for name in os.listdir(directory) if (match := CHECKPOINT_RE.match(name))]
    if not found:
        return None
    steps, name = max(found)
    return os.path.join(directory, name), steps


class ReportFirstStep(BaseCallback):
    """Print ``num_timesteps`` once, after the first env step of ``learn``."""

    def _on_step(self) -> bool:
        if self.n_calls == 1:
            say(f"continue {self.num_timesteps} {self.training_env.num_envs}")
        return True


def say(line: str) -> None:
    # One write per line: lines of the server and its children do not interleave on the pipe
    os.write(1, (line + "\n").encode())


def child(directory: str, save_freq: int) -> None:
    env = make_vec_env("CartPole-v1", n_envs=N_ENVS)
    latest = latest_checkpoint(directory)
    if latest is None:
        model = REINFORCE("MlpPolicy", env, n_steps=32, learning_rate=1e-3, seed=0, device="cpu")
        say("fresh")
    else:
        path, steps = latest
        model = REINFORCE.load(path, env=env, device="cpu")
        say(f"resumed {path} {steps} {model.num_timesteps}")
    callbacks = CallbackList([ReportFirstStep(), CheckpointCallback(save_freq=save_freq, save_path=directory)])
    model.learn(10**9, callback=callbacks, reset_num_timesteps=latest is None)


def warm_up() -> None:
    """Import and initialize everything a child uses once, here, so that the forked children start fast."""
    model = REINFORCE("MlpPolicy", make_vec_env("CartPole-v1", n_envs=N_ENVS), n_steps=32, device="cpu")
    model.learn(64)
    buffer = io.BytesIO()
    model.save(buffer)
    buffer.seek(0)
    REINFORCE.load(buffer, env=make_vec_env("CartPole-v1", n_envs=N_ENVS), device="cpu")


def main() -> None:
    directory, save_freq = sys.argv[1], int(sys.argv[2])
    warm_up()
    say("ready")
    children: list[int] = []
    for line in sys.stdin:
        if line.strip() != "run":
            break
        # Reap the children the test killed
        for pid in list(children):
            if os.waitpid(pid, os.WNOHANG) != (0, 0):
                children.remove(pid)
        pid = os.fork()
        if pid == 0:
            try:
                child(directory, save_freq)
            except BaseException:
                say("error " + traceback.format_exc().replace("\n", " | "))
                os._exit(1)
            os._exit(0)
        children.append(pid)
        say(f"pid {pid}")
    for pid in children:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)


if __name__ == "__main__":
    main()
