"""The decision loop: a trained policy picks an arm per prompt, assisted decoding runs with it.

For each prompt (``bandit-log decode``):

1. choose (timed as ``choose_time_s``): the run's featurizer maps the prompt to features, the
   policy gives probabilities over the arms; ``greedy`` takes the argmax (ties to the lowest arm
   index) and logs propensity 1.0, the probability a greedy (one-hot) policy gives its choice;
   ``sample`` draws from the policy with a generator seeded by (seed, query_id), so a resumed
   run draws what an uninterrupted one would, and logs the exact probability of the drawn arm;
2. plain greedy decoding of the prompt (the lossless reference and ``plain_wall_time_s``), then
   assisted decoding with the chosen arm (the ``none`` arm *is* the plain run);
3. the lossless check: the chosen arm's tokens must equal the reference token for token. A
   mismatch is never hidden: the row says ``lossless = false``, stderr gets a line naming the
   prompt, the arm and the first differing position, and the summary counts it (the CLI exits 2);
4. the reward under the log's reward definition (an existing log keeps its own; a new log is
   created with the requested one and a fresh calibration), appended as one decisions row, one
   part per prompt. (query_id, policy_id) keys already in the log are skipped, so an interrupted
   run resumes;
5. with ``learn``: the policy's ``learn_one(features, arm, reward, propensity)`` after each
   decision (Vowpal Wabbit), and the updated model saved into the run folder's ``model/`` at the
   end (also when the loop stops on an error, so the model matches the decisions written).

Extra decision columns: ``x_draft_calls``, ``x_plain_wall_time_s``, ``x_speedup_wall``,
``x_speedup_count`` (plus the prompts' own ``x_`` columns).
"""

from __future__ import annotations

import hashlib
import os
import sys
import time
from contextlib import ExitStack
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from logging_data import RewardDefinition, create_log, open_log
from logging_data.io import check_new_log_path
from logging_data.outputs import LOG, check_output
from logging_data.prompt_table import PromptColumns

from .build import (
    alignment_for,
    check_reward_supported,
    decode_arm,
    log_metadata,
    measured_row,
    query_fields,
    read_prompts,
    reward_value,
)
from .pricing import Calibration
from .models import ModelsConfig


@dataclass(frozen=True)
class DecodeConfig:
    """Settings of one decode run. ``reward`` is used only when the output log is new."""

    greedy: bool = True
    seed: int = 0
    learn: bool = False
    split: str | None = None
    limit: int | None = None
    reward: RewardDefinition = field(default_factory=lambda: RewardDefinition(kind="speedup_count", metric=""))
    policy_id: str | None = None
    repeats: int = 1
    warmup: int = 0
    prompt_columns: PromptColumns = PromptColumns()
    prompts_format: str | None = None


@dataclass(frozen=True)
class DecodeSummary:
    out: str
    policy_id: str
    n_decisions: int
    n_skipped: int
    n_lossless_failures: int
    mean_reward: float
    mean_choose_time_s: float
    mean_wall_time_s: float
    arm_counts: dict[str, int]
    learned: bool
    seconds: float


def prompt_rng(seed: int, query_id: str) -> np.random.Generator:
    """A generator for one prompt's draw: depends on the seed and the query id only."""
    h = int.from_bytes(hashlib.sha256(str(query_id).encode("utf-8")).digest()[:8], "little")
    return np.random.default_rng([int(seed), h])


def choose_arm(run: Any, prompt: str, query_id: str, greedy: bool, seed: int) -> tuple[int, float, np.ndarray, float]:
    """(arm index, logged propensity, features (d,) float32, seconds choosing) for one prompt."""
    from bandit.policy import policy_act, policy_probabilities

    t0 = time.perf_counter()
    x = np.asarray(run.features([prompt]))
    if greedy:
        probs = np.asarray(policy_probabilities(run.policy, x, [query_id]), dtype=np.float64)
        action, propensity = int(np.argmax(probs[0])), 1.0
    else:
        actions, props = policy_act(run.policy, x, prompt_rng(seed, query_id), [query_id])
        action, propensity = int(actions[0]), float(props[0])
    return action, propensity, x[0], time.perf_counter() - t0


def decode_prompts(
    run: Any,
    models: ModelsConfig,
    prompts: str | os.PathLike,
    out: str | os.PathLike,
    config: DecodeConfig = DecodeConfig(),
    session: Any = None,
    command: str | None = None,
    device: str | None = None,
    threads: int | None = None,
    progress: bool = True,
    calibration: Any = None,
) -> DecodeSummary:
    """Run the decision loop (module docstring). ``run``: a run folder path or a loaded ``Run``.

    ``calibration``: the count model's step costs for a new log (default: calibrate now); pass the
    training log's to compare count-based speed-ups on the same costs.
    """
    t_start = time.perf_counter()
    if isinstance(run, (str, os.PathLike)):
        from bandit.runs import load_run

        run = load_run(run)
    arm_names = tuple(run.arm_names)
    if arm_names != models.arm_names:
        raise ValueError(f"run {getattr(run, 'path', run)}: trained on arms {', '.join(arm_names)}; the models file has "
                         f"{', '.join(models.arm_names)} (same names in the same order are needed)")
    if config.learn and not callable(getattr(run.policy, "learn_one", None)):
        raise ValueError(f"--learn needs a policy that learns online (learn_one, e.g. vw); run {getattr(run, 'path', '?')} "
                         f"holds a {type(run.policy).__name__}")
    policy_id = config.policy_id or Path(getattr(run, "path", "policy")).name
    frame = read_prompts(prompts, config.split, config.limit, config.prompt_columns, config.prompts_format)
    out = Path(out)
    check_output(out, LOG, if_exists="continue",  # decisions go to a log (appended) or a new one, apart from the inputs
                 inputs=[("PROMPTS", prompts), ("the run", getattr(run, "path", None)), *models.input_paths()])
    who = command or "decode_with_policy"
    with ExitStack() as held:
        existing = open_log(out) if (out / "_log.json").exists() else None
        if existing is not None:
            have = [(a.name, a.kind) for a in existing.metadata.arms]
            want = [(a.name, a.kind) for a in models.arms]
            if have != want:
                raise ValueError(f"{out}: the existing log's arms {have} differ from the models file's {want}")
            held.enter_context(existing.writer(who))  # a second writer is refused before any work
            reward = existing.metadata.reward
        else:
            check_new_log_path(out)  # before any model loads
            reward = config.reward
        check_reward_supported(reward, models)
        done = existing.keys("decisions") if existing is not None else set()
        qids = frame["query_id"].astype(str).tolist()
        pending = [i for i, q in enumerate(qids) if (q, policy_id) not in done]
        n_skipped = len(qids) - len(pending)
        if session is None and pending:
            from .session import DecodingSession

            session = DecodingSession(models, device=device, threads=threads)
        encoded = {i: session.encode(frame.at[i, "prompt"]) for i in pending}
        if existing is None and pending:
            from .calibrate import calibrate

            measured_here = calibration is None
            if calibration is None:
                calibration = calibrate(session, on_unstable="warn")  # like a build's own: a busy machine warns, keeps the medians
            build = {"measure": True, "repeats": config.repeats, "warmup": config.warmup,
                     "max_new_tokens": models.target.max_new_tokens, "batch_size": 1}
            log = create_log(out, log_metadata(models, session, calibration, reward, command, build, measured_here))
            held.enter_context(log.writer(who))
        else:
            log = existing
            calibration = Calibration.from_json(log.metadata.extra["calibration"]) if log is not None else None

        from tqdm import tqdm

        rewards, chooses, walls, counts = [], [], [], Counter()
        n_fail = n_learned = 0
        try:
            for i in tqdm(pending, desc="decode", unit="prompt", file=sys.stderr, disable=not progress):
                q = query_fields(frame.loc[i])
                action, propensity, x, choose_s = choose_arm(run, q["prompt"], q["query_id"], config.greedy, config.seed)
                arm = models.arms[action]
                ids = encoded[i]
                plain = session.plain(ids, repeats=config.repeats, warmup=config.warmup)
                outcome = decode_arm(session, ids, arm, plain, repeats=config.repeats, warmup=config.warmup)
                row = measured_row(arm, outcome, plain, calibration, len(ids))
                if reward.kind == "alignment":  # the chosen arm's own output is needed only for this reward
                    own = session.arm_greedy([q["prompt"]], arm)[0]
                    row.update(alignment_for(session, arm, ids, plain.tokens, own, session.max_new_tokens))
                r = reward_value(reward, arm, row)
                if outcome.lossless is False:
                    n_fail += 1
                    print(f"LOSSLESS CHECK FAILED: query_id={q['query_id']} arm={arm.name}: output differs from the target's plain "
                          f"greedy output at new token {outcome.first_mismatch}", file=sys.stderr)
                decision = {
                    **q, "arm": arm.name, "propensity": propensity, "reward": r, "policy_id": policy_id,
                    "decided_at": pd.Timestamp(datetime.now(timezone.utc)), "choose_time_s": choose_s,
                    "wall_time_s": outcome.wall_time_s, "n_new_tokens": outcome.n_new_tokens, "target_calls": outcome.target_calls,
                    "accepted_tokens": outcome.accepted_tokens, "lossless": outcome.lossless,
                    "token_match_rate": row["token_match_rate"],
                    "x_draft_calls": int(outcome.draft_calls), "x_plain_wall_time_s": float(plain.wall_time_s),
                    "x_speedup_wall": float(row["speedup_wall"]), "x_speedup_count": float(row["speedup_count"]),
                }
                log.append("decisions", pd.DataFrame([decision]))
                if config.learn:
                    run.policy.learn_one(x, action, r, propensity)
                    n_learned += 1
                rewards.append(r)
                chooses.append(choose_s)
                walls.append(outcome.wall_time_s)
                counts[arm.name] += 1
        finally:
            if n_learned:
                run.policy.save(Path(run.path) / "model")
    return DecodeSummary(
        out=str(out), policy_id=policy_id, n_decisions=len(rewards), n_skipped=n_skipped, n_lossless_failures=n_fail,
        mean_reward=float(np.mean(rewards)) if rewards else float("nan"),
        mean_choose_time_s=float(np.mean(chooses)) if chooses else float("nan"),
        mean_wall_time_s=float(np.mean(walls)) if walls else float("nan"),
        arm_counts=dict(counts), learned=bool(n_learned), seconds=time.perf_counter() - t_start,
    )
