"""
Reference speeds for the Pong benchmarks.

- :func:`run_reference`: a numpy re-implementation of the training loop of Karpathy's "Pong from Pixels"
  (one ``ALE/Pong-v5`` env, preprocessing, a 6400-200-1 network evaluated and trained by hand, RMSProp
  every 10 episodes), timed in env steps per second;
- :func:`raw_vector_env_throughput`: ale-py's C++ ``AtariVectorEnv`` alone, random UP/DOWN actions, with the
  emulator settings of :func:`sb3_reinforce.pong.make_pong_vec_env`;
- :func:`pong_vec_env_throughput`: :func:`sb3_reinforce.pong.make_pong_vec_env` (the same emulator plus
  Karpathy's preprocessing, difference frames and SB3 bookkeeping), random actions;
- :func:`interleaved_vector_throughputs`: the two above measured in alternation, for a ratio that holds on a busy
  machine.

Importing this module has no side effects; ``python benchmarks/karpathy_reference.py`` prints the three speeds.
"""

import argparse
import contextlib
import ctypes
import time
from collections.abc import Iterator

import numpy as np

__all__ = ["interleaved_vector_throughputs", "pong_vec_env_throughput", "raw_vector_env_throughput", "run_reference"]

N_INPUTS = 80 * 80  # preprocessed frame
N_HIDDEN = 200
GAMMA = 0.99
LEARNING_RATE = 1e-4
RMSPROP_DECAY = 0.99
RMSPROP_EPS = 1e-5
EPISODES_PER_UPDATE = 10
UP, DOWN = 2, 3  # ALE actions RIGHT and LEFT of Pong's minimal action set: paddle up and down
STICKY_ACTIONS = 0.25  # repeat_action_probability of ALE/Pong-v5 and of make_pong_vec_env


def _preprocess(frame: np.ndarray) -> np.ndarray:
    """210x160x3 uint8 frame -> 6400 floats in {0, 1}: crop, keep every 2nd pixel of the red channel, erase background."""
    red = frame[35:195:2, ::2, 0]
    return ((red != 144) & (red != 109) & (red != 0)).astype(np.float64).ravel()


def _discounted_returns(rewards: np.ndarray, gamma: float = GAMMA) -> np.ndarray:
    """Discounted returns, the running sum restarting at every point scored (each point is its own game)."""
    returns = np.zeros_like(rewards)
    running = 0.0
    for t in range(len(rewards) - 1, -1, -1):
        if rewards[t] != 0:
            running = 0.0
        running = gamma * running + rewards[t]
        returns[t] = running
    return returns


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + np.exp(-x))


@contextlib.contextmanager
def _blas_threads(n_threads: int | None) -> Iterator[None]:
    """
    Limit OpenBLAS (numpy's BLAS in its wheels) to ``n_threads`` threads inside the block (Linux; no-op elsewhere
    or when ``n_threads`` is None).
    """
    setter = getter = None
    if n_threads is not None:
        try:
            with open("/proc/self/maps") as maps:
                paths = {line.split()[-1] for line in maps if "openblas" in line.lower() and ".so" in line}
        except OSError:
            paths = set()
        for path in sorted(paths):
            library = ctypes.CDLL(path)
            for suffix in ("scipy_openblas_{}_num_threads64_", "openblas_{}_num_threads64_", "openblas_{}_num_threads"):
                if hasattr(library, suffix.format("set")) and hasattr(library, suffix.format("get")):
                    setter, getter = getattr(library, suffix.format("set")), getattr(library, suffix.format("get"))
                    break
            if setter is not None:
                break
    if setter is None or getter is None:
        yield
        return
    previous = getter()
    setter(n_threads)
    try:
        yield
    finally:
        setter(previous)


def run_reference(
    n_steps: int, seed: int = 0, blas_threads: int | None = 1, repeat_action_probability: float = STICKY_ACTIONS
) -> float:
    """
    Run Karpathy's single-env policy-gradient training loop for ``n_steps`` env steps and time it.

    One gymnasium ``ALE/Pong-v5`` env (frameskip 4, sticky actions 0.25 by default). Each step: preprocess the frame, take
    the difference with the previous one (zeros at the start of an episode), forward ``6400 -> 200 ReLU -> 1
    sigmoid`` (no biases, Xavier-scaled init) giving P(UP), sample UP or DOWN, record input, hidden layer and
    ``y - p``. At the end of an episode: discounted returns (gamma 0.99, reset at every non-zero reward),
    standardized, backward pass, gradient accumulated; every 10 episodes an RMSProp step (decay 0.99,
    eps 1e-5, learning rate 1e-4). The time of these updates is included when they happen, so measure over
    several episodes (a random agent's episode is ~1,000 steps) to count them fairly.

    :param n_steps: env steps to time
    :param seed: seed of the network initialization, the action sampling and the env
    :param blas_threads: OpenBLAS threads during the run. 1 by default: the loop is sequential, and when the
        cores are busy with other work, OpenBLAS's threads make the 200x6400 matrix-vector product up to
        40 times slower. ``None`` leaves BLAS as configured (numpy's default threading, as a user runs it).
    :param repeat_action_probability: sticky-action probability of the env
    :return: env steps per second
    """
    with _blas_threads(blas_threads):
        return _run_reference(n_steps, seed, repeat_action_probability)


def _run_reference(n_steps: int, seed: int, repeat_action_probability: float) -> float:
    import ale_py
    import gymnasium as gym

    if not isinstance(n_steps, int) or n_steps < 1:
        raise ValueError(f"n_steps must be a positive int, got {n_steps!r}")
    gym.register_envs(ale_py)
    rng = np.random.default_rng(seed)
    model = {
        "W1": rng.standard_normal((N_HIDDEN, N_INPUTS)) / np.sqrt(N_INPUTS),
        "W2": rng.standard_normal(N_HIDDEN) / np.sqrt(N_HIDDEN),
    }
    gradient_sum = {name: np.zeros_like(value) for name, value in model.items()}
    squared_average = {name: np.zeros_like(value) for name, value in model.items()}

    env = gym.make("ALE/Pong-v5", frameskip=4, repeat_action_probability=repeat_action_probability)
    frame, _ = env.reset(seed=seed)
    previous = None
    inputs: list[np.ndarray] = []
    hiddens: list[np.ndarray] = []
    dlogits: list[float] = []
    rewards: list[float] = []
    episodes = 0

    start = time.perf_counter()
    for _ in range(n_steps):
        current = _preprocess(frame)
        x = current - previous if previous is not None else np.zeros(N_INPUTS)
        previous = current

        hidden = model["W1"] @ x
        hidden[hidden < 0] = 0.0
        p_up = _sigmoid(float(model["W2"] @ hidden))
        action = UP if rng.random() < p_up else DOWN

        inputs.append(x)
        hiddens.append(hidden)
        # gradient of log pi(action) with respect to the logit
        dlogits.append((1.0 if action == UP else 0.0) - p_up)

        frame, reward, terminated, truncated, _ = env.step(action)
        rewards.append(float(reward))
        if not (terminated or truncated):
            continue

        episodes += 1
        returns = _discounted_returns(np.array(rewards))
        returns -= returns.mean()
        std = returns.std()
        if std > 0:
            returns /= std
        episode_x = np.vstack(inputs)
        episode_h = np.vstack(hiddens)
        episode_dlogit = np.array(dlogits) * returns
        # backward pass through the two layers
        gradient_sum["W2"] += episode_h.T @ episode_dlogit
        dhidden = np.outer(episode_dlogit, model["W2"])
        dhidden[episode_h <= 0] = 0.0
        gradient_sum["W1"] += dhidden.T @ episode_x
        inputs, hiddens, dlogits, rewards = [], [], [], []

        if episodes % EPISODES_PER_UPDATE == 0:
            for name, weights in model.items():
                gradient = gradient_sum[name]
                squared_average[name] = RMSPROP_DECAY * squared_average[name] + (1 - RMSPROP_DECAY) * gradient**2
                # gradient ascent on the expected return
                weights += LEARNING_RATE * gradient / (np.sqrt(squared_average[name]) + RMSPROP_EPS)
                gradient.fill(0.0)

        frame, _ = env.reset()
        previous = None
    elapsed = time.perf_counter() - start
    env.close()
    return n_steps / elapsed


def _make_raw_vector_env(
    n_envs: int, repeat_action_probability: float = STICKY_ACTIONS, grayscale: bool = False, num_threads: int = 0
):
    """
    ale-py's AtariVectorEnv with the emulator settings of make_pong_vec_env's defaults, reset with seed 0: the
    cheapest configuration that gives what the preprocessing reads (the red channel of full 210x160 frames, so RGB:
    ALE's grayscale is a luminance; resizing would blend pixels; max-pooling and frame stacking cost more).
    ``num_threads`` is the emulator's worker threads (0: ale-py's choice, as in make_pong_vec_env).
    """
    from ale_py.vector_env import AtariVectorEnv

    venv = AtariVectorEnv(
        "pong",
        n_envs,
        num_threads=num_threads,
        max_num_frames_per_episode=108_000,
        repeat_action_probability=repeat_action_probability,
        autoreset_mode="SameStep",
        img_height=210,
        img_width=160,
        grayscale=grayscale,
        stack_num=1,
        frameskip=4,
        maxpool=False,
        noop_max=0,
        episodic_life=False,
        reward_clipping=False,
        use_fire_reset=False,
    )
    venv.reset(seed=0)
    return venv


def _timed_steps(venv, actions: np.ndarray, warmup: int) -> float:
    """Step ``venv`` with each row of ``actions``, time all but the first ``warmup`` rows, close it; env steps/s."""
    for t in range(warmup):
        venv.step(actions[t])
    start = time.perf_counter()
    for t in range(warmup, len(actions)):
        venv.step(actions[t])
    elapsed = time.perf_counter() - start
    venv.close()
    return actions.shape[1] * (len(actions) - warmup) / elapsed


def raw_vector_env_throughput(
    n_envs: int, n_steps: int, repeat_action_probability: float = STICKY_ACTIONS, grayscale: bool = False, num_threads: int = 0
) -> float:
    """
    Steps per second of ale-py's ``AtariVectorEnv`` alone, random UP/DOWN actions.

    Same emulator settings as :func:`sb3_reinforce.pong.make_pong_vec_env` with its defaults: 210x160 RGB frames,
    frameskip 4, sticky actions 0.25, no max-pooling, resizing, frame stacking, no-ops or FIRE at reset,
    same-step auto-reset. 20 warm-up steps are not timed.

    :param n_envs: number of parallel games
    :param n_steps: vector steps to time (each is ``n_envs`` env steps)
    :param repeat_action_probability: sticky-action probability
    :param grayscale: grayscale frames instead of RGB (a third of the bytes; for comparison only, the preprocessing
        reads the red channel)
    :param num_threads: the emulator's worker threads (0: ale-py's choice, the default of make_pong_vec_env)
    :return: env steps per second (``n_envs * n_steps / seconds``)
    """
    venv = _make_raw_vector_env(n_envs, repeat_action_probability, grayscale, num_threads)
    actions = np.random.default_rng(0).choice(np.array([UP, DOWN], dtype=np.int32), size=(n_steps + 20, n_envs))
    return _timed_steps(venv, actions, warmup=20)


def pong_vec_env_throughput(n_envs: int, n_steps: int) -> float:
    """
    Steps per second of :func:`sb3_reinforce.pong.make_pong_vec_env` (defaults), random actions.

    Includes everything the VecEnv does: emulation, preprocessing, difference frames, auto-reset, episode
    statistics and info dicts. 20 warm-up steps are not timed.

    :param n_envs: number of parallel games
    :param n_steps: vector steps to time (each is ``n_envs`` env steps)
    :return: env steps per second (``n_envs * n_steps / seconds``)
    """
    from sb3_reinforce.pong.vec_env import make_pong_vec_env

    venv = make_pong_vec_env(n_envs=n_envs, seed=0)
    actions = np.random.default_rng(0).integers(0, 2, size=(n_steps + 20, n_envs))
    venv.reset()
    return _timed_steps(venv, actions, warmup=20)


def interleaved_vector_throughputs(n_envs: int, n_steps: int, chunk: int = 25) -> tuple[float, float]:
    """
    Steps per second of the raw ``AtariVectorEnv`` and of ``make_pong_vec_env``, measured alternately.

    Both environments exist side by side and are stepped in alternating chunks of ``chunk`` vector steps with the
    same random actions, so that a change in the machine's load affects both measurements alike: their ratio is
    the cost of the preprocessing, differencing and SB3 bookkeeping, even on a busy machine.

    :param n_envs: number of parallel games of each environment
    :param n_steps: vector steps to time for each environment (rounded up to a multiple of ``chunk``)
    :param chunk: vector steps per turn
    :return: ``(raw AtariVectorEnv, PongVecEnv)`` env steps per second
    """
    from sb3_reinforce.pong.vec_env import make_pong_vec_env

    raw = _make_raw_vector_env(n_envs)
    fast = make_pong_vec_env(n_envs=n_envs, seed=0)
    fast.reset()
    rng = np.random.default_rng(0)
    n_chunks = -(-n_steps // chunk)
    elapsed_raw = elapsed_fast = 0.0
    for index in range(n_chunks + 1):  # the first chunk is a warm-up
        actions = rng.integers(0, 2, size=(chunk, n_envs))
        ale_actions = np.where(actions == 0, UP, DOWN).astype(np.int32)
        start = time.perf_counter()
        for t in range(chunk):
            raw.step(ale_actions[t])
        middle = time.perf_counter()
        for t in range(chunk):
            fast.step(actions[t])
        end = time.perf_counter()
        if index > 0:
            elapsed_raw += middle - start
            elapsed_fast += end - middle
    raw.close()
    fast.close()
    total = n_envs * n_chunks * chunk
    return total / elapsed_raw, total / elapsed_fast


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Pong reference speeds (env steps per second)")
    parser.add_argument("--reference-steps", type=int, default=11_000, help="env steps of Karpathy's loop (~1k per episode)")
    parser.add_argument("--n-envs", type=int, default=16, help="parallel games of the vectorized envs")
    parser.add_argument("--vector-steps", type=int, default=1_000, help="vector steps of each vectorized env")
    args = parser.parse_args()

    print(f"Karpathy numpy loop, 1 env: {run_reference(args.reference_steps):,.0f} steps/s")
    raw, fast = interleaved_vector_throughputs(args.n_envs, args.vector_steps)
    print(f"raw AtariVectorEnv, {args.n_envs} envs: {raw:,.0f} steps/s")
    print(f"PongVecEnv, {args.n_envs} envs: {fast:,.0f} steps/s ({fast / raw:.1%} of raw, measured alternately)")
