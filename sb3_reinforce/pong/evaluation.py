"""
The one protocol by which a Pong agent is scored (the example, the comparison tool and the zoo call it).

:func:`evaluate_pong` plays ``n_games`` (at least 10) whole games of Pong, each to 21 points, with the model's
greedy policy (``deterministic=True``) and again with its stochastic policy, and returns a :class:`PongEvaluation`:
mean and standard deviation of the game score (points won minus points lost, in [-21, 21]) for each, the games'
scores, and the seeds and emulator settings used.

- Emulator: that of ``ALE/Pong-v5`` (Machado et al. 2018): sticky actions with probability 0.25, frameskip 4,
  episodes truncated after 108,000 emulator frames. A ``KarpathyPong-v0`` agent (``observations="karpathy"``)
  plays on :func:`sb3_reinforce.pong.make_pong_vec_env`; an agent of rl-zoo's Atari pipeline
  (``observations="atari"``) on gymnasium's ``ALE/Pong-v5`` (``frameskip=1``) under SB3's ``AtariWrapper``
  (84x84 grey frames, frameskip 4 with max-pooling, no random no-ops, no life-loss episodes, no reward clipping)
  with 4 stacked frames. Both get the same seed numbers; gymnasium derives the emulator's seed from them, so the
  Atari games are not the same games as the difference-frame ones.
- Held-out seeds: game ``j`` is played in its own emulator, reset with the ALE seed ``PONG_EVAL_SEED_BASE + j``
  (``PONG_EVAL_SEED_BASE = 2**30``); greedy and stochastic games use the same seeds. The project's training seeds
  (the comparison tool's ``0..N-1``, an explicit zoo ``--seed``, the example's ``--seed`` plus its resume offsets)
  are far below that range. The ALE seeds the training envs got from the model's ``seed`` (and from any
  ``training_seed`` given) are computed as the envs compute them (:func:`training_ale_seeds`), and a training seed
  whose games were seeded with one of the evaluation seeds is refused (``ValueError``), never shifted: a score is
  always on the same seeds for the same ``n_games``. (A random zoo seed, rl_zoo3's draw below ``2**32`` when
  ``--seed`` is not given, hits them with probability about ``(n_envs + n_games) / 2**31`` and is then refused.)
- Sampling: the stochastic policy draws its actions from torch's generator seeded with ``PONG_EVAL_SEED_BASE``
  inside ``torch.random.fork_rng`` (the caller's random state is left as it was), so an evaluation is reproducible.

.. code-block:: python

    from sb3_reinforce.pong import evaluate_pong

    result = evaluate_pong(model, n_games=10)
    print(result.format())
"""

import dataclasses
import math
from collections.abc import Iterable
from typing import Any

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.vec_env import VecEnv

from sb3_reinforce.common.checks import check_number
from sb3_reinforce.pong.preprocessing import N_PIXELS
from sb3_reinforce.pong.registration import STICKY_ACTION_PROBABILITY
from sb3_reinforce.pong.vec_env import _MAX_SEED as MAX_ALE_SEED
from sb3_reinforce.pong.vec_env import make_pong_vec_env

__all__ = [
    "ATARI_FRAME_STACK",
    "MAX_EVAL_GAMES",
    "MIN_EVAL_GAMES",
    "OBSERVATIONS",
    "PONG_EVAL_SEED_BASE",
    "PongEvaluation",
    "check_held_out",
    "evaluate_pong",
    "pong_evaluation_seeds",
    "training_ale_seeds",
]

#: First ALE seed of the evaluation games (game ``j`` gets ``PONG_EVAL_SEED_BASE + j``); training seeds stay below
PONG_EVAL_SEED_BASE: int = 2**30
#: Fewest games per policy the protocol accepts
MIN_EVAL_GAMES: int = 10
#: Most games in one evaluation (their seeds stay ALE seeds, below ``2**31 - 1``)
MAX_EVAL_GAMES: int = 100_000
#: The emulator of ``ALE/Pong-v5``: sticky actions, frameskip, frame limit of an episode
EVAL_REPEAT_ACTION_PROBABILITY: float = STICKY_ACTION_PROBABILITY
EVAL_FRAMESKIP: int = 4
EVAL_MAX_NUM_FRAMES_PER_EPISODE: int = 108_000
#: Frames stacked by rl-zoo's Atari entries (``frame_stack: 4``), for ``observations="atari"``
ATARI_FRAME_STACK: int = 4
#: The observation pipelines :func:`evaluate_pong` can score
OBSERVATIONS = ("karpathy", "atari")
#: Games played at once (one emulator each); more games are played in successive groups
_MAX_PARALLEL_GAMES = 32


@dataclasses.dataclass(frozen=True)
class PongEvaluation:
    """
    Scores of a Pong agent under :func:`evaluate_pong`'s protocol. A score is the return of one whole game:
    points won minus points lost. Standard deviations are over games (``ddof=0``, as SB3's ``evaluate_policy``).

    :param greedy_mean: mean score of the greedy policy (``deterministic=True``)
    :param greedy_std: standard deviation of those scores
    :param stochastic_mean: mean score of the stochastic policy (actions sampled)
    :param stochastic_std: standard deviation of those scores
    :param greedy_scores: score of each greedy game, in the order of ``seeds``
    :param stochastic_scores: score of each stochastic game, in the order of ``seeds``
    :param greedy_lengths: steps of each greedy game (one step is ``frameskip`` emulator frames)
    :param stochastic_lengths: steps of each stochastic game
    :param n_games: games per policy
    :param seeds: ALE seed of each game (the same for both policies)
    :param repeat_action_probability: sticky-action probability of the emulator
    :param frameskip: emulator frames per step
    :param max_num_frames_per_episode: emulator frames after which a game is cut
    :param greedy_truncated: greedy games cut at that limit before either side reached 21
    :param stochastic_truncated: stochastic games cut at that limit
    :param training_seeds_checked: how many ALE seeds of training were checked against ``seeds`` (0: the model's
        seed was unknown and no ``training_seed`` was given)
    """

    greedy_mean: float
    greedy_std: float
    stochastic_mean: float
    stochastic_std: float
    greedy_scores: tuple[float, ...]
    stochastic_scores: tuple[float, ...]
    greedy_lengths: tuple[int, ...]
    stochastic_lengths: tuple[int, ...]
    n_games: int
    seeds: tuple[int, ...]
    repeat_action_probability: float
    frameskip: int
    max_num_frames_per_episode: int
    greedy_truncated: int
    stochastic_truncated: int
    training_seeds_checked: int

    #: Header of :meth:`markdown_row`'s table
    MARKDOWN_HEADER = (
        "| agent | greedy score (mean +- std) | stochastic score (mean +- std) | games per policy | evaluation seeds "
        "| sticky actions |\n|---|---|---|---|---|---|"
    )

    @property
    def seed_range(self) -> str:
        """The evaluation seeds as ``"first..last"``."""
        return f"{self.seeds[0]}..{self.seeds[-1]}"

    def _truncation_note(self) -> str:
        if not (self.greedy_truncated or self.stochastic_truncated):
            return ""
        return (
            f"; games cut at {self.max_num_frames_per_episode} frames before 21 points: "
            f"{self.greedy_truncated} greedy, {self.stochastic_truncated} stochastic"
        )

    def format(self) -> str:
        """
        :return: one line, e.g. ``"Pong, 10 games per policy (held-out ALE seeds 1073741824..1073741833, sticky
            actions 0.25, frameskip 4): greedy -21.0 +- 0.0, stochastic -20.3 +- 0.6 (game score, mean +- std)"``
        """
        return (
            f"Pong, {self.n_games} games per policy (held-out ALE seeds {self.seed_range}, sticky actions "
            f"{self.repeat_action_probability:g}, frameskip {self.frameskip}): greedy {self.greedy_mean:+.1f} +- "
            f"{self.greedy_std:.1f}, stochastic {self.stochastic_mean:+.1f} +- {self.stochastic_std:.1f} "
            f"(game score, mean +- std){self._truncation_note()}"
        )

    def markdown_row(self, label: str) -> str:
        """
        :param label: the agent's name in the first column
        :return: one row of the table headed by :attr:`MARKDOWN_HEADER`
        """
        return (
            f"| {label} | {self.greedy_mean:+.1f} +- {self.greedy_std:.1f} | {self.stochastic_mean:+.1f} +- "
            f"{self.stochastic_std:.1f} | {self.n_games} | {self.seed_range} | {self.repeat_action_probability:g} |"
        )

    def to_dict(self) -> dict[str, Any]:
        """:return: the fields as plain JSON data (lists for the tuples)"""
        return {key: list(value) if isinstance(value, tuple) else value for key, value in dataclasses.asdict(self).items()}


def pong_evaluation_seeds(n_games: int) -> tuple[int, ...]:
    """
    :param n_games: number of games
    :return: the ALE seeds of the evaluation games, ``PONG_EVAL_SEED_BASE + j`` for ``j < n_games``
    """
    check_number("n_games", n_games, MIN_EVAL_GAMES, MAX_EVAL_GAMES, integer=True)
    return tuple(range(PONG_EVAL_SEED_BASE, PONG_EVAL_SEED_BASE + int(n_games)))


def training_ale_seeds(seed: int, n_envs: int) -> set[int]:
    """
    The ALE seeds that envs seeded with ``seed`` give their ``n_envs`` games (game ``i`` gets ``seed + i``):
    :func:`sb3_reinforce.pong.make_pong_vec_env` (the zoo, the tools, the example) passes ``(seed + i) % (2**31 - 1)``
    to the emulator, the gymnasium env ``KarpathyPong-v0``/``ALE/Pong-v5`` one derived from it by
    ``numpy.random.SeedSequence``; both are returned.

    :param seed: seed given to the training env (non-negative)
    :param n_envs: its number of games
    :return: the ALE seeds
    """
    check_number("training_seed", seed, 0, math.inf, integer=True)
    check_number("n_envs", n_envs, 1, math.inf, integer=True)
    ale_seeds = set()
    for env_seed in range(int(seed), int(seed) + int(n_envs)):
        ale_seeds.add(env_seed % MAX_ALE_SEED)
        # ale_py.env.AtariEnv.seed_game: the ALE's random_seed is the second word of the seed's SeedSequence, as int32
        ale_seeds.add(int(np.int32(np.random.SeedSequence(env_seed).generate_state(n_words=2)[1])))
    return ale_seeds


def check_held_out(model: Any, n_games: int = MIN_EVAL_GAMES, training_seed: int | Iterable[int] | None = None) -> int:
    """
    Refuse a model whose training games were seeded with one of the evaluation seeds of ``n_games`` games (what
    :func:`evaluate_pong` checks before it plays).

    :param model: the model; its ``seed`` (if not None) and ``n_envs`` are used
    :param n_games: games of the evaluation
    :param training_seed: further seed(s) given to the training envs (see :func:`evaluate_pong`)
    :return: how many ALE seeds of training were checked
    """
    seeds = pong_evaluation_seeds(n_games)
    if training_seed is None:
        given: list[Any] = []
    elif isinstance(training_seed, Iterable) and not isinstance(training_seed, str | bytes):
        given = list(training_seed)
    else:
        given = [training_seed]
    candidates = [("training_seed", value) for value in given]
    if getattr(model, "seed", None) is not None:
        candidates.append(("the model's seed", model.seed))
    n_envs = int(getattr(model, "n_envs", None) or 1)
    evaluation = set(seeds)
    checked: set[int] = set()
    for name, value in candidates:
        if isinstance(value, bool) or not isinstance(value, int | np.integer):
            raise TypeError(f"{name}={value!r} is not allowed: expected an int >= 0 or an iterable of them")
        ale_seeds = training_ale_seeds(int(value), n_envs)
        overlap = sorted(ale_seeds & evaluation)
        if overlap:
            raise ValueError(
                f"{name}={value!r} is not allowed: its {n_envs} training games were seeded with evaluation seeds "
                f"{overlap[:5]}{'...' if len(overlap) > 5 else ''} (the held-out seeds are {seeds[0]}..{seeds[-1]}, "
                f"PONG_EVAL_SEED_BASE + game): train with a seed below PONG_EVAL_SEED_BASE - n_envs = "
                f"{PONG_EVAL_SEED_BASE - n_envs}"
            )
        checked |= ale_seeds
    return len(checked)


def _play(
    model: Any, env: VecEnv, seeds: tuple[int, ...], deterministic: bool, frames_per_count: int = 1
) -> list[tuple[float, int, bool]]:
    """
    One game per env of ``env`` (env ``i`` reset with ``seeds[i]``), with SB3's ``evaluate_policy``:
    (score, steps, truncated) per seed. ``frames_per_count``: what one unit of the monitor's episode length is
    (1: an agent step; ``EVAL_FRAMESKIP``: an emulator frame, the Atari pipeline's Monitor sitting below the
    frame skipping).
    """
    env.seed(seeds[0])  # used at evaluate_policy's reset: env i gets seeds[0] + i
    games: dict[int, tuple[float, int, bool]] = {}

    def record(local_vars: dict[str, Any], _globals: dict[str, Any]) -> None:
        # evaluate_policy counts the game of env i when VecMonitor reports it ("episode"): one game per env
        info = local_vars["info"]
        if local_vars["done"] and "episode" in info:
            episode = info["episode"]
            steps = -(-int(episode["l"]) // frames_per_count)
            games[local_vars["i"]] = (float(episode["r"]), steps, bool(info.get("TimeLimit.truncated", False)))

    evaluate_policy(model, env, n_eval_episodes=len(seeds), deterministic=deterministic, callback=record)
    assert sorted(games) == list(range(len(seeds))), "evaluate_policy plays one game per env"
    return [games[i] for i in range(len(seeds))]


def _evaluation_env(observations: str, n_games: int, repeat_action_probability: float, max_frames: int) -> VecEnv:
    """``n_games`` emulators of the protocol with the observations of ``observations``."""
    if observations == "karpathy":
        return make_pong_vec_env(
            n_envs=n_games,
            frameskip=EVAL_FRAMESKIP,
            repeat_action_probability=repeat_action_probability,
            max_num_frames_per_episode=max_frames,
        )
    from stable_baselines3.common.atari_wrappers import AtariWrapper
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import VecFrameStack

    # Whole games, scored as played. make_vec_env puts the Monitor below AtariWrapper: it sees the game's raw
    # score and counts emulator frames.
    env = make_vec_env(
        "ALE/Pong-v5",
        n_envs=n_games,
        env_kwargs=dict(
            frameskip=1,  # AtariWrapper skips (and max-pools) the frames itself
            repeat_action_probability=repeat_action_probability,
            max_num_frames_per_episode=max_frames,
        ),
        wrapper_class=AtariWrapper,
        wrapper_kwargs=dict(noop_max=0, frame_skip=EVAL_FRAMESKIP, terminal_on_life_loss=False, clip_reward=False),
    )
    return VecFrameStack(env, ATARI_FRAME_STACK)


def _check_model(model: Any, observations: str) -> None:
    """Refuse a model that is not an agent of the ``observations`` pipeline."""
    observation_space, action_space = getattr(model, "observation_space", None), getattr(model, "action_space", None)
    if not callable(getattr(model, "predict", None)):
        raise ValueError(f"model must be an SB3 model with predict(), got {type(model).__name__}")
    if observations == "karpathy":
        expected_observations = spaces.Box(low=-1, high=1, shape=(N_PIXELS,), dtype=np.int8)
        if observation_space != expected_observations:
            raise ValueError(
                f"model must be an agent of KarpathyPong-v0 with observation space {expected_observations} (difference "
                f"frames), got {type(model).__name__} with observation space {observation_space}"
                " (an agent of AtariWrapper frames: observations='atari')"
            )
        if action_space != spaces.Discrete(2):
            raise ValueError(
                f"model must be an agent of KarpathyPong-v0 with actions Discrete(2) (UP, DOWN), got {action_space}"
            )
        return
    shape = getattr(observation_space, "shape", None)
    if shape is None or sorted(shape) != sorted((ATARI_FRAME_STACK, 84, 84)) or not isinstance(action_space, spaces.Discrete):
        raise ValueError(
            f"observations='atari' needs an agent of AtariWrapper frames, {ATARI_FRAME_STACK} stacked (shape (84, 84, "
            f"{ATARI_FRAME_STACK}) or ({ATARI_FRAME_STACK}, 84, 84)) with Discrete actions, got observation space "
            f"{observation_space} and actions {action_space}"
        )


def evaluate_pong(
    model: BaseAlgorithm,
    n_games: int = MIN_EVAL_GAMES,
    training_seed: int | Iterable[int] | None = None,
    repeat_action_probability: float = EVAL_REPEAT_ACTION_PROBABILITY,
    max_num_frames_per_episode: int = EVAL_MAX_NUM_FRAMES_PER_EPISODE,
    observations: str = "karpathy",
) -> PongEvaluation:
    """
    Score a Pong agent by the package's protocol (see the module's docstring): ``n_games`` whole games on
    held-out seeds with sticky actions, greedy and stochastic.

    .. code-block:: python

        model = karpathy_pong(seed=0).learn(10_000_000)
        print(evaluate_pong(model).format())

    :param model: an agent of ``KarpathyPong-v0`` (observations ``Box(-1, 1, (6400,), int8)``, actions
        ``Discrete(2)``), e.g. from :func:`sb3_reinforce.pong.karpathy_pong` or the zoo; its ``seed`` and ``n_envs``
        (saved with it) give training seeds that are checked
    :param n_games: games per policy, at least ``MIN_EVAL_GAMES`` (10)
    :param training_seed: seed(s) the training envs were given besides the model's own ``seed`` (e.g. the
        example's resume seeds); each value ``s`` stands for the seeds ``s .. s + n_envs - 1`` of the model's
        ``n_envs`` games. A training seed whose games used an evaluation seed raises ``ValueError``.
    :param repeat_action_probability: sticky actions of the evaluation emulator. The protocol is 0.25; 0.0 (the
        deterministic emulator) only shows how much an agent relies on the emulator being deterministic
    :param max_num_frames_per_episode: emulator frames after which a game is cut (``ALE/Pong-v5``: 108,000);
        cut games are counted in the result
    :param observations: what the model sees: ``"karpathy"`` (difference frames of ``KarpathyPong-v0``) or
        ``"atari"`` (rl-zoo's Atari pipeline: ``AtariWrapper`` frames, 4 stacked)
    :return: the scores, seeds and settings
    """
    seeds = pong_evaluation_seeds(n_games)
    check_number("repeat_action_probability", repeat_action_probability, 0, 1)
    check_number("max_num_frames_per_episode", max_num_frames_per_episode, 1, math.inf, integer=True)
    if observations not in OBSERVATIONS:
        raise ValueError(f"observations={observations!r} is not allowed: choose from {', '.join(OBSERVATIONS)}")
    _check_model(model, observations)
    checked = check_held_out(model, n_games, training_seed)

    max_frames = int(max_num_frames_per_episode)
    greedy: list[tuple[float, int, bool]] = []
    stochastic: list[tuple[float, int, bool]] = []
    device = getattr(model, "device", th.device("cpu"))
    # The greedy policy draws nothing, the stochastic one from torch's generator: seeded here, restored after
    with th.random.fork_rng(devices=[device] if th.device(device).type == "cuda" else []):
        th.manual_seed(PONG_EVAL_SEED_BASE)
        for start in range(0, len(seeds), _MAX_PARALLEL_GAMES):
            group = seeds[start : start + _MAX_PARALLEL_GAMES]
            # one emulator per game, for both policies (building and seeding an emulator costs as much as
            # hundreds of steps)
            env = _evaluation_env(observations, len(group), float(repeat_action_probability), max_frames)
            frames_per_count = 1 if observations == "karpathy" else EVAL_FRAMESKIP
            try:
                greedy += _play(model, env, group, deterministic=True, frames_per_count=frames_per_count)
                stochastic += _play(model, env, group, deterministic=False, frames_per_count=frames_per_count)
            finally:
                env.close()
    greedy_scores, greedy_lengths, greedy_truncated = zip(*greedy, strict=True)
    stochastic_scores, stochastic_lengths, stochastic_truncated = zip(*stochastic, strict=True)
    return PongEvaluation(
        greedy_mean=float(np.mean(greedy_scores)),
        greedy_std=float(np.std(greedy_scores)),
        stochastic_mean=float(np.mean(stochastic_scores)),
        stochastic_std=float(np.std(stochastic_scores)),
        greedy_scores=greedy_scores,
        stochastic_scores=stochastic_scores,
        greedy_lengths=greedy_lengths,
        stochastic_lengths=stochastic_lengths,
        n_games=len(seeds),
        seeds=seeds,
        repeat_action_probability=float(repeat_action_probability),
        frameskip=EVAL_FRAMESKIP,
        max_num_frames_per_episode=max_frames,
        greedy_truncated=sum(greedy_truncated),
        stochastic_truncated=sum(stochastic_truncated),
        training_seeds_checked=checked,
    )
