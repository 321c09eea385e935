"""
Karpathy's "Pong from Pixels" agent with REINFORCE: train, checkpoint, resume, play.

.. code-block:: bash

    python examples/pong_karpathy.py --run-dir runs/pong --minutes 60          # train (Ctrl-C safe: checkpoints)
    python examples/pong_karpathy.py --run-dir runs/pong --minutes 60 --resume # go on from runs/pong/latest.zip
    python examples/pong_karpathy.py --play runs/pong/latest.zip --video pong.mp4
    python examples/pong_karpathy.py --run-dir runs/pong --plot pong_learning_curve.png

The run folder holds ``latest.zip`` (the model, saved every ``--checkpoint-every`` episodes and at the end) with
``progress.json`` (the episode count, running reward and time of that model), and ``episodes.csv`` (episode, wall
seconds, env steps, reward, running reward; Karpathy's running reward is ``0.99 * old + 0.01 * new``).
"""

import argparse
import csv
import json
import os
import pathlib
import sys
import time
from typing import Any

import numpy as np
import torch as th
from stable_baselines3.common.callbacks import BaseCallback

from sb3_reinforce import REINFORCE
from sb3_reinforce.common.safety import atomic_write
from sb3_reinforce.hyperparams import load_hyperparams
from sb3_reinforce.pong.karpathy import karpathy_pong
from sb3_reinforce.pong.registration import KARPATHY_PONG_ID
from sb3_reinforce.pong.vec_env import make_pong_vec_env
from sb3_reinforce.pong.wrappers import make_karpathy_pong_env

CSV_HEADER = ["episode", "wall_seconds", "timesteps", "reward", "running_reward"]
#: Episode count, running reward, wall seconds and env steps of the model in latest.zip
PROGRESS_FILE = "progress.json"


class KarpathyLogger(BaseCallback):
    """
    Per finished episode: update the running reward (``0.99 * old + 0.01 * new``, the first episode's reward to
    start), append a CSV row, print a line; save the model every ``checkpoint_every`` episodes; stop after
    ``max_seconds`` of wall clock.

    :param run_dir: folder of ``episodes.csv`` and ``latest.zip``
    :param checkpoint_every: episodes between checkpoints
    :param max_seconds: stop training after this many seconds (None: no limit)
    :param episode: episodes already done (resume)
    :param running_reward: running reward so far (resume; None: start from the first episode)
    :param wall_offset: wall seconds already spent (resume)
    :param verbose: 1 to print one line per episode
    """

    def __init__(
        self,
        run_dir: pathlib.Path,
        checkpoint_every: int = 100,
        max_seconds: float | None = None,
        episode: int = 0,
        running_reward: float | None = None,
        wall_offset: float = 0.0,
        verbose: int = 1,
    ):
        super().__init__(verbose)
        self.run_dir = run_dir
        self.checkpoint_every = checkpoint_every
        self.max_seconds = max_seconds
        self.episode = episode
        self.running_reward = running_reward
        self.wall_offset = wall_offset
        self.start = time.time()
        self.csv_path = run_dir / "episodes.csv"
        new_file = not self.csv_path.exists()
        self.csv_file = open(self.csv_path, "a", newline="")  # noqa: SIM115 - closed in _on_training_end
        self.writer = csv.writer(self.csv_file)
        if new_file:
            self.writer.writerow(CSV_HEADER)

    @property
    def checkpoint_path(self) -> pathlib.Path:
        return self.run_dir / "latest.zip"

    def _on_step(self) -> bool:
        for info in self.locals["infos"]:
            if "episode" not in info:
                continue
            reward = float(info["episode"]["r"])
            self.episode += 1
            self.running_reward = reward if self.running_reward is None else 0.99 * self.running_reward + 0.01 * reward
            wall = self.wall_offset + time.time() - self.start
            self.writer.writerow([self.episode, f"{wall:.1f}", self.num_timesteps, reward, f"{self.running_reward:.4f}"])
            self.csv_file.flush()
            self.logger.record("karpathy/running_reward", self.running_reward)
            if self.verbose:
                print(
                    f"episode {self.episode}: reward {reward:+.0f}, running reward {self.running_reward:.3f} "
                    f"({wall / 60:.1f} min, {self.num_timesteps} steps)",
                    flush=True,
                )
            if self.episode % self.checkpoint_every == 0:
                self.save_checkpoint()
        return self.max_seconds is None or time.time() - self.start < self.max_seconds

    def save_checkpoint(self) -> None:
        """Save the model, then the progress it corresponds to (both atomically: a kill leaves the previous pair)."""
        self.model.save(self.checkpoint_path)
        progress = dict(
            episode=self.episode,
            running_reward=self.running_reward,
            wall_seconds=self.wall_offset + time.time() - self.start,
            timesteps=self.num_timesteps,
        )
        with atomic_write(self.run_dir / PROGRESS_FILE) as file:
            file.write(json.dumps(progress).encode())

    def _on_training_end(self) -> None:
        self.save_checkpoint()
        self.csv_file.close()


def read_progress(run_dir: pathlib.Path) -> tuple[int, float | None, float]:
    """
    Episodes done, running reward and wall seconds at the last checkpoint of ``run_dir``. Rows of
    ``episodes.csv`` written after that checkpoint (the run was killed between two checkpoints) are dropped, so
    that the resumed run continues the curve from the state of the model it loads.
    """
    progress = json.loads((run_dir / PROGRESS_FILE).read_text())
    csv_path = run_dir / "episodes.csv"
    if csv_path.exists():
        with open(csv_path, newline="") as file:
            rows = [row for row in csv.reader(file)][1:]
        kept = [row for row in rows if int(row[0]) <= progress["episode"]]
        if len(kept) < len(rows):
            print(f"--resume: dropping {len(rows) - len(kept)} episodes.csv rows written after the checkpoint")
            with atomic_write(csv_path) as file:
                file.write(",".join(CSV_HEADER).encode() + b"\n" + b"".join(",".join(row).encode() + b"\n" for row in kept))
    return int(progress["episode"]), progress["running_reward"], float(progress["wall_seconds"])


def play(checkpoint: str, video: str | None, episodes: int, seed: int, max_steps: int) -> None:
    """Greedy (deterministic) play of a saved model; records an mp4 of the first episode if ``video`` is given."""
    model = REINFORCE.load(checkpoint, device="cpu")
    # gymnasium's ALE/Pong-v5 with Karpathy's wrappers: the emulator settings of make_pong_vec_env, and frames
    game = make_karpathy_pong_env(render_mode="rgb_array")
    frames: list[np.ndarray] = []
    for episode in range(episodes):
        obs, _ = game.reset(seed=seed + episode)
        total, steps, done = 0.0, 0, False
        while not done and steps < max_steps:
            action, _ = model.predict(np.asarray(obs).reshape(1, -1), deterministic=True)
            obs, reward, terminated, truncated, _ = game.step(int(action[0]))
            total += float(reward)
            steps += 1
            done = terminated or truncated
            if video and episode == 0:
                frames.append(game.render())
        print(f"play episode {episode + 1}: reward {total:+.0f} in {steps} steps", flush=True)
    if video:
        import imageio.v2 as imageio

        imageio.mimsave(video, frames, fps=30, macro_block_size=1)
        print(f"video: {video} ({len(frames)} frames, {os.path.getsize(video)} bytes)")


def plot(csv_path: pathlib.Path, png_path: str) -> None:
    """Learning curve of a run: running reward vs episodes and vs wall-clock minutes (two panels)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with open(csv_path, newline="") as file:
        rows = list(csv.DictReader(file))
    episodes = np.array([int(row["episode"]) for row in rows])
    minutes = np.array([float(row["wall_seconds"]) / 60 for row in rows])
    rewards = np.array([float(row["reward"]) for row in rows])
    running = np.array([float(row["running_reward"]) for row in rows])
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for axis, x, label in ((left, episodes, "episodes"), (right, minutes, "wall-clock minutes")):
        axis.plot(x, rewards, ".", color="0.75", markersize=2, label="episode reward")
        axis.plot(x, running, color="C0", label="running reward (0.99 old + 0.01 new)")
        axis.set_xlabel(label)
        axis.grid(alpha=0.3)
    left.set_ylabel("reward (points won - points lost)")
    left.legend(loc="lower right")
    figure.suptitle(f"REINFORCE, Karpathy's Pong agent: {episodes[-1]} episodes in {minutes[-1]:.0f} min")
    figure.tight_layout()
    figure.savefig(png_path, dpi=100)
    print(f"plot: {png_path}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run-dir", default="runs/pong_karpathy", help="folder of latest.zip and episodes.csv")
    parser.add_argument("--n-envs", type=int, default=None, help="Pong games played in parallel (default: the zoo entry's)")
    parser.add_argument("--n-episodes", type=int, default=None, help="episodes per update (default: the zoo entry's)")
    parser.add_argument("--learning-rate", type=float, default=None, help="RMSprop learning rate (default: the zoo entry's)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timesteps", type=int, default=100_000_000, help="total env steps (all envs)")
    parser.add_argument("--minutes", type=float, default=None, help="stop after this many minutes of wall clock")
    parser.add_argument("--checkpoint-every", type=int, default=100, help="episodes between checkpoints")
    parser.add_argument("--torch-threads", type=int, default=1, help="torch threads (1 is fastest on a busy 2-core CPU)")
    parser.add_argument("--resume", action="store_true", help="continue from RUN_DIR/latest.zip and episodes.csv")
    parser.add_argument("--no-progress-bar", action="store_true")
    parser.add_argument("--quiet", action="store_true", help="no line per episode")
    parser.add_argument("--play", metavar="CHECKPOINT", default=None, help="play a saved model greedily instead of training")
    parser.add_argument("--video", default=None, help="with --play: mp4 file to record the first episode to")
    parser.add_argument("--play-episodes", type=int, default=1)
    parser.add_argument("--max-play-steps", type=int, default=30_000)
    parser.add_argument("--plot", metavar="PNG", default=None, help="plot RUN_DIR/episodes.csv to PNG instead of training")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    th.set_num_threads(args.torch_threads)
    if args.play:
        play(args.play, args.video, args.play_episodes, args.seed, args.max_play_steps)
        return
    run_dir = pathlib.Path(args.run_dir)
    if args.plot:
        plot(run_dir / "episodes.csv", args.plot)
        return
    run_dir.mkdir(parents=True, exist_ok=True)
    overrides: dict[str, Any] = {}
    if args.n_episodes is not None:
        overrides["n_episodes"] = args.n_episodes
    if args.learning_rate is not None:
        overrides["learning_rate"] = args.learning_rate
    episode, running_reward, wall_offset = 0, None, 0.0
    checkpoint = run_dir / "latest.zip"
    if args.resume:
        if not checkpoint.exists() or not (run_dir / PROGRESS_FILE).exists():
            sys.exit(f"--resume: no checkpoint at {checkpoint} (with its {PROGRESS_FILE})")
        episode, running_reward, wall_offset = read_progress(run_dir)
        n_envs = args.n_envs if args.n_envs is not None else load_hyperparams("reinforce", KARPATHY_PONG_ID)["n_envs"]
        model = REINFORCE.load(checkpoint, env=make_pong_vec_env(n_envs=n_envs, seed=args.seed + episode), device="cpu")
        print(f"resumed from {checkpoint}: {model.num_timesteps} steps, episode {episode}, running reward {running_reward}")
    else:
        model = karpathy_pong(n_envs=args.n_envs, seed=args.seed, **overrides)
    callback = KarpathyLogger(
        run_dir,
        checkpoint_every=args.checkpoint_every,
        max_seconds=None if args.minutes is None else 60 * args.minutes,
        episode=episode,
        running_reward=running_reward,
        wall_offset=wall_offset,
        verbose=0 if args.quiet else 1,
    )
    model.learn(
        args.timesteps,
        callback=callback,
        reset_num_timesteps=not args.resume,
        progress_bar=not args.no_progress_bar,
    )
    print(f"done: {callback.episode} episodes, running reward {callback.running_reward}, model {checkpoint}")


if __name__ == "__main__":
    main()
