"""
Kill test: a training process SIGKILLed at random moments (some of them during checkpoint writes) always
leaves a loadable latest checkpoint, and training resumes from it with ``num_timesteps`` continuing.
"""

import os
import queue
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from sb3_reinforce.reinforce.reinforce import REINFORCE
from tests.resume_worker import latest_checkpoint

N_KILLS = 20
TIMEOUT = 60.0


class Worker:
    """The fork server of ``resume_worker.py`` and a queue of its output lines."""

    def __init__(self, directory: Path, save_freq: int) -> None:
        env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONUNBUFFERED="1")
        root = Path(__file__).resolve().parents[1]
        env["PYTHONPATH"] = os.pathsep.join([str(root), env.get("PYTHONPATH", "")])
        self.process = subprocess.Popen(
            [sys.executable, str(root / "tests" / "resume_worker.py"), str(directory), str(save_freq)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line.strip())

    def expect(self, *prefixes: str) -> list[str]:
        line = self.lines.get(timeout=TIMEOUT)
        words = line.split()
        assert words and words[0] in prefixes, f"expected {prefixes}, the worker said: {line}"
        return words

    def run(self) -> int:
        assert self.process.stdin is not None
        self.process.stdin.write("run\n")
        self.process.stdin.flush()
        return int(self.expect("pid")[1])

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _wait_for_tmp_file(directory: Path, deadline: float) -> bool:
    """Poll until a checkpoint is being written (its temporary file exists)."""
    while time.monotonic() < deadline:
        if any(name.endswith(".tmp") for name in os.listdir(directory)):
            return True
        time.sleep(0.0005)
    return False


def test_sigkill_at_random_moments_then_resume(tmp_path: Path) -> None:
    rng = random.Random(1234)
    directory = tmp_path / "checkpoints"
    directory.mkdir()
    # Frequent saves (every 10 steps of 2 envs): a good share of the kills land inside a checkpoint write
    worker = Worker(directory, save_freq=10)
    kills_in_writes = 0
    resumed_from: list[int] = []
    try:
        worker.expect("ready")
        for round_idx in range(N_KILLS + 1):
            start = time.monotonic()
            pid = worker.run()
            words = worker.expect("fresh", "resumed", "error")
            assert words[0] != "error", " ".join(words)
            if round_idx == 0:
                assert words[0] == "fresh"
            else:
                # The child loaded the latest checkpoint and its num_timesteps is the checkpoint's
                assert words[0] == "resumed", " ".join(words)
                checkpoint_steps, loaded_steps = int(words[2]), int(words[3])
                assert loaded_steps == checkpoint_steps
                resumed_from.append(checkpoint_steps)
            words = worker.expect("continue", "error")
            assert words[0] != "error", " ".join(words)
            first_steps, n_envs = int(words[1]), int(words[2])
            print(f"round {round_idx}: training after {time.monotonic() - start:.2f} s")
            if round_idx > 0:
                # learn(..., reset_num_timesteps=False) continues counting from the checkpoint
                assert first_steps == resumed_from[-1] + n_envs
            if round_idx == N_KILLS:
                os.kill(pid, signal.SIGKILL)
                break
            if round_idx == 0:
                # Let the first checkpoint appear
                deadline = time.monotonic() + TIMEOUT
                while latest_checkpoint(str(directory)) is None and time.monotonic() < deadline:
                    time.sleep(0.01)
            if round_idx % 2 == 1:
                # Kill while a checkpoint is being written
                time.sleep(rng.uniform(0.0, 0.2))
                in_write = _wait_for_tmp_file(directory, time.monotonic() + 5.0)
                os.kill(pid, signal.SIGKILL)
            else:
                # Kill at a random moment of training
                time.sleep(rng.uniform(0.05, 0.5))
                os.kill(pid, signal.SIGKILL)
                in_write = False
            if in_write:
                kills_in_writes += 1
            # The latest checkpoint is complete and loads (the interrupted write left only a temporary file)
            latest = latest_checkpoint(str(directory))
            assert latest is not None
            model = REINFORCE.load(latest[0], device="cpu")
            assert model.num_timesteps == latest[1]
    finally:
        worker.close()
    assert len(resumed_from) == N_KILLS
    # Training progressed over the kills: the checkpoints resumed from never go back
    assert resumed_from == sorted(resumed_from)
    assert resumed_from[-1] > resumed_from[0]
    leftovers = [name for name in os.listdir(directory) if name.endswith(".tmp")]
    print(f"{N_KILLS} kills survived, {kills_in_writes} during a write, {len(leftovers)} interrupted writes left")
    assert kills_in_writes >= 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-s"]))
