"""
Karpathy's "Pong from Pixels" agent with REINFORCE: train, checkpoint, resume, play.

.. code-block:: bash

    python examples/pong_karpathy.py --run-dir runs/pong --minutes 60          # train (Ctrl-C safe: checkpoints)
    python examples/pong_karpathy.py --run-dir runs/pong --minutes 60 --resume # go on from latest.zip, to 60 min in all
    python examples/pong_karpathy.py --play runs/pong/latest.zip --video pong.mp4
    python examples/pong_karpathy.py --run-dir runs/pong --plot pong_learning_curve.png
    python examples/pong_karpathy.py --run-dir runs/pong --minutes 60 --repeat-action-probability 0.0  # deterministic

Training uses sticky actions (``--repeat-action-probability 0.25``, the ``ALE/Pong-v5`` setting); 0.0 is the
deterministic emulator, where the agent can learn the emulator instead of the game. At the end the model is scored
by the package's Pong protocol (``sb3_reinforce.pong.evaluate_pong``: ``--eval-games`` whole games on held-out
seeds with sticky actions, greedy and stochastic), printed and written to ``evaluation.json``.

The run folder holds ``latest.zip`` (the model, saved every ``--checkpoint-every`` episodes and at the end) with
``progress.json`` (the episode count, running reward, time, sticky-action probability and training seeds of that
model), ``episodes.csv`` (episode, wall seconds, env steps, reward, running reward; Karpathy's running reward is
``0.99 * old + 0.01 * new``) and ``evaluation.json``.
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
from stable_baselines3.common.type_aliases import Schedule
from stable_baselines3.common.vec_env import VecEnv

from sb3_reinforce import REINFORCE
from sb3_reinforce.common.estimators import BASELINES, IMPORTANCE_WEIGHTS
from sb3_reinforce.common.safety import atomic_write
from sb3_reinforce.compare import machine_description
from sb3_reinforce.hyperparams import (
    HyperparamsError,
    build_model_kwargs,
    load_hyperparams,
    make_vec_env_from_entry,
    schedule_from_entry,
)
from sb3_reinforce.pong.evaluation import MAX_EVAL_GAMES, MIN_EVAL_GAMES, evaluate_pong
from sb3_reinforce.pong.karpathy import karpathy_pong
from sb3_reinforce.pong.registration import KARPATHY_PONG_ID, STICKY_ACTION_PROBABILITY
from sb3_reinforce.pong.wrappers import make_karpathy_pong_env

CSV_HEADER = ["episode", "wall_seconds", "timesteps", "reward", "running_reward"]
#: Episode count, running reward, wall seconds, env steps and emulator/seeds of the model in latest.zip
PROGRESS_FILE = "progress.json"
#: The final evaluation (sb3_reinforce.pong.evaluate_pong)
EVALUATION_FILE = "evaluation.json"
#: Sticky actions of a progress.json written before they were recorded: the example then trained without them
OLD_REPEAT_ACTION_PROBABILITY = 0.0


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
    :param emulator: recorded in ``progress.json``: ``repeat_action_probability`` and ``training_seeds`` (the
        seeds the training envs were given, this session's included)
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
        emulator: dict[str, Any] | None = None,
        verbose: int = 1,
    ):
        super().__init__(verbose)
        self.run_dir = run_dir
        self.emulator = dict(emulator or {})
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
        # --minutes is the run's budget: the sessions before a --resume count (wall_offset)
        return self.max_seconds is None or self.wall_offset + time.time() - self.start < self.max_seconds

    def save_checkpoint(self) -> None:
        """Save the model, then the progress it corresponds to (both atomically: a kill leaves the previous pair)."""
        self.model.save(self.checkpoint_path)
        progress = dict(
            episode=self.episode,
            running_reward=self.running_reward,
            wall_seconds=self.wall_offset + time.time() - self.start,
            timesteps=self.num_timesteps,
            **self.emulator,
        )
        with atomic_write(self.run_dir / PROGRESS_FILE) as file:
            file.write(json.dumps(progress).encode())

    def _on_training_end(self) -> None:
        self.save_checkpoint()
        self.csv_file.close()


def read_progress(run_dir: pathlib.Path) -> dict[str, Any]:
    """
    The ``progress.json`` of the last checkpoint of ``run_dir`` (episodes done, running reward, wall seconds, env
    steps, sticky-action probability, training seeds). Rows of ``episodes.csv`` written after that checkpoint (the
    run was killed between two checkpoints) are dropped, so that the resumed run continues the curve from the state
    of the model it loads.
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
    return progress


def play(
    checkpoint: str,
    video: str | None,
    episodes: int,
    seed: int,
    max_steps: int,
    repeat_action_probability: float = STICKY_ACTION_PROBABILITY,
) -> None:
    """Greedy (deterministic) play of a saved model; records an mp4 of the first episode if ``video`` is given."""
    model = REINFORCE.load(checkpoint, device="cpu")
    # gymnasium's ALE/Pong-v5 with Karpathy's wrappers: the emulator settings of make_pong_vec_env, and frames
    game = make_karpathy_pong_env(render_mode="rgb_array", repeat_action_probability=repeat_action_probability)
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

        # Encoded in memory, then written atomically (a kill leaves no half-written video)
        video_format = pathlib.Path(video).suffix.lstrip(".") or "mp4"
        data = imageio.mimwrite("<bytes>", frames, format=video_format, fps=30, macro_block_size=1)
        with atomic_write(video) as file:
            file.write(data)
        print(f"video: {video} ({len(frames)} frames, {os.path.getsize(video)} bytes)")


def _read_curve(csv_path: pathlib.Path) -> dict[str, np.ndarray]:
    with open(csv_path, newline="") as file:
        rows = list(csv.DictReader(file))
    if not rows:
        sys.exit(f"{csv_path}: no episodes yet")
    columns = ("episode", "wall_seconds", "timesteps", "reward", "running_reward")
    return {column: np.array([float(row[column]) for row in rows]) for column in columns}


def plot(csv_paths: list[pathlib.Path], png_path: str) -> None:
    """
    Learning curves: running reward vs episodes, env steps and wall-clock minutes (three panels). One run: its episode
    rewards too; several (seeds): one running-reward line each.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves = [_read_curve(path) for path in csv_paths]
    figure, axes = plt.subplots(1, 3, figsize=(15, 4), sharey=True)
    panels = (
        ("episode", 1, "episodes"),
        ("timesteps", 1e6, "env steps (millions)"),
        ("wall_seconds", 60, "wall-clock minutes"),
    )
    for axis, (column, scale, label) in zip(axes, panels, strict=True):
        for index, (path, curve) in enumerate(zip(csv_paths, curves, strict=True)):
            x = curve[column] / scale
            if len(curves) == 1:
                axis.plot(x, curve["reward"], ".", color="0.75", markersize=2, label="episode reward")
            name = "running reward (0.99 old + 0.01 new)" if len(curves) == 1 else path.parent.name
            axis.plot(x, curve["running_reward"], color=f"C{index}", label=name)
        axis.axhline(0, color="0.4", linewidth=0.8, linestyle="--")
        axis.set_xlabel(label)
        axis.grid(alpha=0.3)
    axes[0].set_ylabel("reward (points won - points lost)")
    axes[0].legend(loc="lower right", fontsize=8)
    ends = ", ".join(f"{int(c['episode'][-1])} ep / {c['wall_seconds'][-1] / 60:.0f} min" for c in curves)
    title = "REINFORCE, Karpathy's Pong agent" + (f" ({len(curves)} runs)" if len(curves) > 1 else "")
    figure.suptitle(f"{title}: {ends}")
    figure.tight_layout()
    with atomic_write(png_path) as file:
        figure.savefig(file, format=pathlib.Path(png_path).suffix.lstrip(".") or "png", dpi=100)
    plt.close(figure)
    print(f"plot: {png_path}")


def learning_rate_argument(text: str) -> float | Schedule:
    """``--learning-rate``: a number, or an rl-zoo ``lin_<value>`` schedule (checked here, before any training)."""
    try:
        return schedule_from_entry("learning_rate", text) if text.startswith("lin_") else float(text)
    except (HyperparamsError, ValueError) as error:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a number or lin_<value>") from error


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run-dir", default="runs/pong_karpathy", help="folder of latest.zip and episodes.csv")
    parser.add_argument("--n-envs", type=int, default=None, help="Pong games played in parallel (default: the zoo entry's)")
    batch = parser.add_mutually_exclusive_group()
    batch.add_argument("--n-episodes", type=int, default=None, help="episodes per update (default: the zoo entry's)")
    batch.add_argument(
        "--n-steps",
        type=int,
        default=None,
        help="update every N steps of each env instead, on the episodes complete by then (n_episodes None)",
    )
    parser.add_argument(
        "--learning-rate",
        type=learning_rate_argument,
        default=None,
        help="RMSprop learning rate: a number, or lin_<value> (rl-zoo's schedule: from the value to 0 at --timesteps) "
        "(default: the zoo entry's)",
    )
    parser.add_argument(
        "--baseline",
        choices=list(BASELINES),
        default=None,
        help="baseline subtracted from the returns (default: the zoo entry's): "
        + "; ".join(f"{name}: {baseline.description}" for name, baseline in BASELINES.items())
        + " (KarpathyPolicy's V(s): a linear head on the hidden layer, or its own network with --critic-hidden)",
    )
    parser.add_argument("--ent-coef", type=float, default=None, help="entropy bonus coefficient (default: the zoo entry's)")
    parser.add_argument(
        "--importance-weights",
        choices=list(IMPORTANCE_WEIGHTS),
        default=None,
        help="weights of the steps collected before an update (default: the zoo entry's): "
        + "; ".join(f"{name}: {text}" for name, text in IMPORTANCE_WEIGHTS.items()),
    )
    parser.add_argument(
        "--gae-lambda",
        type=float,
        default=None,
        help="GAE lambda of the value baseline (default: the zoo entry's; 1 is the Monte-Carlo return minus V(s))",
    )
    parser.add_argument(
        "--n-critic-updates",
        type=int,
        default=None,
        help="gradient steps on the value loss per batch (default: the zoo entry's; > 1 needs --baseline value)",
    )
    parser.add_argument(
        "--critic-hidden",
        type=int,
        default=None,
        help="hidden units of a critic network of its own (default: the zoo entry's; 0: the linear head on the "
        "policy's hidden layer)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the games (game i gets SEED + i) and network")
    parser.add_argument(
        "--repeat-action-probability",
        type=float,
        default=None,
        help=f"sticky actions of training and --play (default {STICKY_ACTION_PROBABILITY:g}, ALE/Pong-v5; 0.0: the "
        "deterministic emulator, which the agent can learn instead of the game; --resume: the run's own)",
    )
    parser.add_argument(
        "--eval-games",
        type=int,
        default=MIN_EVAL_GAMES,
        help=f"games per policy of the final evaluation (evaluate_pong: held-out seeds, sticky actions "
        f"{STICKY_ACTION_PROBABILITY:g}, greedy and stochastic; at least {MIN_EVAL_GAMES}, 0 to skip it)",
    )
    parser.add_argument(
        "--timesteps",
        type=int,
        default=None,
        help="env steps of the whole run (all envs; --resume counts those done; default: the zoo entry's n_timesteps, "
        "also the horizon of a lin_ learning rate)",
    )
    parser.add_argument(
        "--minutes", type=float, default=None, help="wall-clock minutes of the whole run (--resume counts those done)"
    )
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
    parser.add_argument(
        "--also-plot", metavar="RUN_DIR", nargs="+", default=[], help="with --plot: more runs (seeds) on the same figure"
    )
    return parser.parse_args(argv)


def entry_kwargs() -> tuple[dict[str, Any], dict[str, Any]]:
    """The ``KarpathyPong-v0`` entry as ``(algorithm kwargs, zoo settings)`` (:func:`build_model_kwargs`)."""
    return build_model_kwargs(load_hyperparams("reinforce", KARPATHY_PONG_ID))


def training_env(n_envs: int | None, seed: int, repeat_action_probability: float) -> VecEnv:
    """
    The training envs of a resumed run, built from the ``KarpathyPong-v0`` entry as :func:`karpathy_pong` builds a
    new run's (the one path from an entry to envs: its ``env_kwargs``, ``n_envs`` and wrappers), with the run's
    sticky actions.
    """
    _, zoo = entry_kwargs()
    zoo = {**zoo, "env_kwargs": {**zoo["env_kwargs"], "repeat_action_probability": repeat_action_probability}}
    return make_vec_env_from_entry(KARPATHY_PONG_ID, zoo, n_envs=n_envs, seed=seed)


def final_evaluation(model: REINFORCE, run_dir: pathlib.Path, n_games: int, training_seeds: list[int]) -> None:
    """Score the model by the package's Pong protocol, print it and write ``evaluation.json``."""
    result = evaluate_pong(model, n_games=n_games, training_seed=training_seeds)
    print(result.format(), flush=True)
    with atomic_write(run_dir / EVALUATION_FILE) as file:
        # and the machine (a seed trained differently from one CPU to the next before act stopped using softplus)
        record = {**result.to_dict(), "timesteps": model.num_timesteps, "machine": machine_description()}
        file.write(json.dumps(record).encode())


def main(argv: list[str] | None = None) -> REINFORCE | None:
    """Train (and evaluate), play or plot, as the arguments say; return the trained model (None otherwise)."""
    args = parse_args(argv)
    if args.eval_games != 0 and not MIN_EVAL_GAMES <= args.eval_games <= MAX_EVAL_GAMES:
        # checked before training, not after an hour of it
        sys.exit(
            f"--eval-games={args.eval_games} is not allowed: 0 (no evaluation) or {MIN_EVAL_GAMES} to {MAX_EVAL_GAMES} games"
        )
    th.set_num_threads(args.torch_threads)
    if args.play:
        sticky = STICKY_ACTION_PROBABILITY if args.repeat_action_probability is None else args.repeat_action_probability
        play(args.play, args.video, args.play_episodes, args.seed, args.max_play_steps, sticky)
        return None
    run_dir = pathlib.Path(args.run_dir)
    if args.plot:
        plot([pathlib.Path(d) / "episodes.csv" for d in [run_dir, *args.also_plot]], args.plot)
        return None
    run_dir.mkdir(parents=True, exist_ok=True)
    overrides: dict[str, Any] = {}
    if args.n_episodes is not None:
        overrides["n_episodes"] = args.n_episodes
    if args.n_steps is not None:
        overrides.update(n_steps=args.n_steps, n_episodes=None)
    if args.learning_rate is not None:
        overrides["learning_rate"] = args.learning_rate
    if args.baseline is not None:
        overrides["baseline"] = BASELINES[args.baseline].value
    if args.ent_coef is not None:
        overrides["ent_coef"] = args.ent_coef
    if args.gae_lambda is not None:
        overrides["gae_lambda"] = args.gae_lambda
    if args.importance_weights is not None:
        overrides["importance_weights"] = args.importance_weights
    if args.n_critic_updates is not None:
        overrides["n_critic_updates"] = args.n_critic_updates
    if args.critic_hidden is not None:
        # Added to the entry's policy_kwargs, not in their place
        policy_kwargs = entry_kwargs()[0].get("policy_kwargs", {})
        overrides["policy_kwargs"] = {**policy_kwargs, "critic_hidden": args.critic_hidden}
    episode, running_reward, wall_offset = 0, None, 0.0
    checkpoint = run_dir / "latest.zip"
    if args.resume:
        if not checkpoint.exists() or not (run_dir / PROGRESS_FILE).exists():
            sys.exit(f"--resume: no checkpoint at {checkpoint} (with its {PROGRESS_FILE})")
        progress = read_progress(run_dir)
        episode, running_reward, wall_offset = int(progress["episode"]), progress["running_reward"], progress["wall_seconds"]
        sticky = float(progress.get("repeat_action_probability", OLD_REPEAT_ACTION_PROBABILITY))
        if args.repeat_action_probability is not None and args.repeat_action_probability != sticky:
            sys.exit(
                f"--repeat-action-probability={args.repeat_action_probability} is not allowed with --resume: the run "
                f"in {run_dir} trained with {sticky} (leave the option out to go on with it)"
            )
        training_seeds = [int(seed) for seed in progress.get("training_seeds", [args.seed])]
        # New sticky-action noise for the resumed games (the first session's seed would replay its own)
        seed = args.seed + episode
        env = training_env(args.n_envs, seed, sticky)
        model = REINFORCE.load(checkpoint, env=env, device="cpu")
        # SB3's load reseeds the env with the model's saved seed: seed it (and torch) with this session's
        model.set_random_seed(seed)
        print(f"resumed from {checkpoint}: {model.num_timesteps} steps, episode {episode}, running reward {running_reward}")
    else:
        sticky = STICKY_ACTION_PROBABILITY if args.repeat_action_probability is None else args.repeat_action_probability
        training_seeds, seed = [], args.seed
        model = karpathy_pong(n_envs=args.n_envs, seed=seed, env_kwargs=dict(repeat_action_probability=sticky), **overrides)
    training_seeds.append(seed)
    callback = KarpathyLogger(
        run_dir,
        checkpoint_every=args.checkpoint_every,
        max_seconds=None if args.minutes is None else 60 * args.minutes,
        episode=episode,
        running_reward=running_reward,
        wall_offset=wall_offset,
        emulator=dict(repeat_action_probability=sticky, training_seeds=training_seeds),
        verbose=0 if args.quiet else 1,
    )
    # Both budgets are the run's, not the session's: SB3's learn(n, reset_num_timesteps=False) would train n more
    # (and a lin_ learning rate reaches 0 at the run's last step, resumed or not)
    timesteps = entry_kwargs()[1]["n_timesteps"] if args.timesteps is None else args.timesteps
    remaining_steps = timesteps - model.num_timesteps
    remaining_seconds = None if args.minutes is None else 60 * args.minutes - wall_offset
    if remaining_steps > 0 and (remaining_seconds is None or remaining_seconds > 0):
        model.learn(
            remaining_steps,
            callback=callback,
            reset_num_timesteps=not args.resume,
            progress_bar=not args.no_progress_bar,
        )
    else:
        print(f"--resume: the run's budget is spent ({model.num_timesteps} steps, {wall_offset / 60:.1f} min): not training")
        callback.csv_file.close()
    print(f"done: {callback.episode} episodes, running reward {callback.running_reward}, model {checkpoint}")
    if args.eval_games:
        final_evaluation(model, run_dir, args.eval_games, training_seeds)
    return model


if __name__ == "__main__":
    main()
