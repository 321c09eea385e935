"""
Pong in the comparison: the entries of the PPO rows and the scoring of every row with the project's Pong protocol.

A comparison on ``KarpathyPong-v0`` (``--env KarpathyPong-v0``) has three kinds of rows:

- ``reinforce``: the ``KarpathyPong-v0`` entry of ``reinforce.yml`` (Karpathy's agent on
  :func:`sb3_reinforce.pong.make_pong_vec_env`);
- ``ppo``: SB3's PPO on the same env and observations (difference frames, UP/DOWN), with rl-zoo's Atari PPO
  settings (8 envs, 128 steps, 4 epochs, ...) and an ``MlpPolicy`` of the size of Karpathy's network: one hidden
  layer of 200 ReLU units for the policy and one for the value (:data:`KARPATHY_PONG_PPO_ENTRY`);
- ``ppo@ALE/Pong-v5`` (or ``ppo@PongNoFrameskip-v4``): rl-zoo's Atari PPO, rl_zoo3's ``atari`` entry of
  ``ppo.yml`` (``CnnPolicy``, ``AtariWrapper``, 4 stacked frames) on the full Atari game, with sticky actions 0.25
  (and, for ``ALE/*-v5`` ids, ``frameskip=1``: ``AtariWrapper`` skips 4 frames itself).

Every row is scored by :func:`pong_evaluation`, the Pong evaluation protocol of
:mod:`sb3_reinforce.pong.evaluation`: held-out seeds, sticky actions 0.25, whole games, greedy and stochastic.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sb3_reinforce.pong.registration import KARPATHY_PONG_ID, STICKY_ACTION_PROBABILITY

__all__ = [
    "ATARI_STICKY_ACTIONS",
    "KARPATHY_PONG_PPO_ENTRY",
    "atari_pong_entry",
    "is_pong",
    "pong_entry",
    "pong_evaluation",
]

#: PPO on ``KarpathyPong-v0``: rl_zoo3's Atari PPO settings with an MlpPolicy of Karpathy's size (6400 -> 200 ReLU).
KARPATHY_PONG_PPO_ENTRY: dict[str, Any] = {
    "n_envs": 8,
    "n_timesteps": 1e7,
    "policy": "MlpPolicy",
    "policy_kwargs": "dict(net_arch=dict(pi=[200], vf=[200]), activation_fn=nn.ReLU)",
    "n_steps": 128,
    "n_epochs": 4,
    "batch_size": 256,
    "learning_rate": "lin_2.5e-4",
    "clip_range": "lin_0.1",
    "vf_coef": 0.5,
    "ent_coef": 0.01,
}
#: Sticky actions of the Atari PPO row's training env (those of ``ALE/Pong-v5`` and of the evaluation protocol).
ATARI_STICKY_ACTIONS = STICKY_ACTION_PROBABILITY


def is_pong(env_id: str) -> bool:
    """Whether a comparison on ``env_id`` is scored with the Pong protocol."""
    return env_id == KARPATHY_PONG_ID


def _is_atari_pong(env_id: str) -> bool:
    return env_id.startswith("ALE/Pong-") or env_id.startswith("Pong")


def atari_pong_entry(entry: dict[str, Any], env_id: str) -> dict[str, Any]:
    """
    rl_zoo3's Atari entry with sticky actions 0.25 (and ``frameskip=1`` on ``ALE/*-v5``, whose default of 4 would
    multiply ``AtariWrapper``'s own skip of 4).

    :param entry: the ``atari`` entry of rl_zoo3's ``ppo.yml``
    :param env_id: ``ALE/Pong-v5``, ``PongNoFrameskip-v4``, ...
    :return: a copy with ``env_kwargs`` set
    """
    entry = copy.deepcopy(entry)
    env_kwargs = dict(entry.get("env_kwargs") or {})
    env_kwargs["repeat_action_probability"] = ATARI_STICKY_ACTIONS
    if env_id.startswith("ALE/"):
        env_kwargs["frameskip"] = 1
    entry["env_kwargs"] = env_kwargs
    return entry


def pong_entry(algo: str, env_id: str, train_env_id: str) -> tuple[dict[str, Any], Path] | None:
    """
    The entry of a row of a Pong comparison that is not a zoo entry as it stands (None for the others).

    :param algo: the row's algorithm
    :param env_id: the comparison's env
    :param train_env_id: the env the row trains on
    :return: ``(entry, file it is defined in)`` or None
    """
    if not is_pong(env_id):
        return None
    if algo == "ppo" and train_env_id == KARPATHY_PONG_ID:
        return copy.deepcopy(KARPATHY_PONG_PPO_ENTRY), Path(__file__).resolve()
    if algo != "reinforce" and _is_atari_pong(train_env_id):
        from sb3_reinforce.hyperparams import default_hyperparams_path, load_hyperparams

        entry = load_hyperparams(algo, train_env_id)
        return atari_pong_entry(entry, train_env_id), default_hyperparams_path(algo).resolve()
    return None


def pong_evaluation(model: Any, train_env_id: str, n_games: int, training_seeds: Sequence[int] = ()) -> Any:
    """
    Score ``model`` by the project's Pong protocol: ``n_games`` (>= 10) whole games on the held-out seeds of
    :func:`sb3_reinforce.pong.evaluation.pong_evaluation_seeds`, sticky actions 0.25, frameskip 4, greedy and
    stochastic, with the observations the model was trained on.

    Both kinds of row are scored by :func:`sb3_reinforce.pong.evaluation.evaluate_pong`: a ``KarpathyPong-v0``
    model on difference frames, an Atari model on the protocol's ``observations="atari"`` pipeline
    (``AtariWrapper`` frames, 4 stacked, on ``ALE/Pong-v5``).

    :param model: a model trained on ``train_env_id``
    :param train_env_id: ``KarpathyPong-v0`` or an Atari Pong id
    :param n_games: games per policy
    :param training_seeds: seeds its training envs got besides the model's own ``seed`` (resumed runs), checked
        against the held-out seeds
    :return: a :class:`sb3_reinforce.pong.evaluation.PongEvaluation`
    """
    from sb3_reinforce.pong.evaluation import evaluate_pong

    observations = "karpathy" if train_env_id == KARPATHY_PONG_ID else "atari"
    return evaluate_pong(model, n_games=n_games, training_seed=list(training_seeds), observations=observations)
