"""``bandit-log simulate``: log a simulated logging policy on a full-information log.

Thin over ``logging_data.simulate``: reads LOG's outcomes table, samples one arm per prompt
with exact propensities, and appends the result as one new part of LOG's decisions table.
"""

from __future__ import annotations

import click

from bandit.cli._common import emit_json, say


@click.command()
@click.argument("log", type=click.Path(exists=True, file_okay=False, dir_okay=True, path_type=str))
@click.option("--policy", type=click.Choice(["uniform", "epsilon-greedy", "softmax"]), default="uniform", show_default=True,
              help="The logging policy to simulate.")
@click.option("--arm", default=None, help="epsilon-greedy: the arm (name) chosen with probability 1 - epsilon.")
@click.option("--epsilon", type=float, default=0.1, show_default=True, help="epsilon-greedy: exploration probability.")
@click.option("--temperature", type=float, default=0.1, show_default=True,
              help="softmax: temperature of the softmax over the outcomes' rewards.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the sampling.")
@click.option("--policy-id", default=None, help="policy_id recorded on the rows (default: derived from the settings).")
@click.option("--json", "as_json", is_flag=True, help="Print a summary as one JSON document on stdout.")
def simulate(log: str, policy: str, arm: str | None, epsilon: float, temperature: float, seed: int, policy_id: str | None, as_json: bool) -> None:
    """Simulate a logging policy on LOG's outcomes and append the decisions to LOG.

    Every prompt of the outcomes table gets one decision: an arm drawn from the logging
    policy (over the arms measured for that prompt), its exact propensity, and its reward. The
    true value of any policy stays known from the outcomes, so `bandit-log evaluate` can check
    its estimates against it. A (query_id, policy_id) pair already in the log is an error and
    nothing is written.

    \b
    Example:
      bandit-log simulate LOG --policy uniform --seed 1
      bandit-log simulate LOG --policy epsilon-greedy --arm plain --epsilon 0.2   # an arm of the log
      bandit-log simulate LOG --policy softmax --temperature 0.05 --policy-id soft-a --json
    """
    from logging_data import open_log, require_valid_log

    opened = open_log(log)
    with opened.writer(f"bandit-log simulate {log} --policy {policy}"):  # a second writer is refused before any work
        require_valid_log(log)  # never add decisions to a log that breaks its contract
        summary = _simulate(opened, log, policy, arm, epsilon, temperature, seed, policy_id)
    if as_json:
        emit_json(summary)
    else:
        click.echo(f"appended {summary['n_decisions']} decisions by {summary['policy_id']} to {log}/decisions")
        click.echo("arm counts: " + ", ".join(f"{a}={c}" for a, c in summary["arm_counts"].items()))
        click.echo(f"mean logged reward {summary['mean_reward']:.4g}; smallest propensity {summary['min_propensity']:.4g}")


def _simulate(opened, log: str, policy: str, arm, epsilon: float, temperature: float, seed: int, policy_id) -> dict:
    import numpy as np

    from logging_data.simulate import EpsilonGreedyLogging, SoftmaxLogging, UniformLogging, simulate_decisions

    arms = opened.metadata.arm_names
    if not opened.has("outcomes"):
        raise ValueError(f"{log}: the log has no outcomes table to simulate from (build one with `bandit-log build`)")
    if policy == "epsilon-greedy":
        if arm is None:
            raise click.UsageError("--policy epsilon-greedy needs --arm NAME (the arm chosen with probability 1 - epsilon)")
        if arm not in arms:
            raise ValueError(f"--arm: unknown arm {arm!r}; the log's arms are {', '.join(arms)}")
        logging_policy = EpsilonGreedyLogging(arms.index(arm), epsilon)
        default_id = f"sim-epsilon-greedy-{arm}-eps{epsilon:g}-seed{seed}"
    elif policy == "softmax":
        logging_policy = SoftmaxLogging(temperature)
        default_id = f"sim-softmax-t{temperature:g}-seed{seed}"
    else:
        logging_policy = UniformLogging()
        default_id = f"sim-uniform-seed{seed}"
    if arm is not None and policy != "epsilon-greedy":
        say(f"note: --arm is ignored by --policy {policy}")
    pid = policy_id or default_id
    if opened.has("decisions"):
        have = int((opened.read("decisions", ["policy_id"])["policy_id"] == pid).sum())
        if have:
            raise ValueError(f"{log}: policy_id {pid!r} already has {have} decisions in this log; choose another --policy-id "
                             f"(or --seed)")
    outcomes = opened.read("outcomes")
    frame = simulate_decisions(outcomes, arms, logging_policy, np.random.default_rng(seed), policy_id=policy_id or default_id)
    part = opened.append("decisions", frame)
    counts = frame["arm"].value_counts().reindex(list(arms), fill_value=0)
    return {
        "log": log,
        "policy_id": str(frame["policy_id"].iloc[0]),
        "policy": policy,
        "n_decisions": len(frame),
        "arm_counts": {a: int(c) for a, c in counts.items()},
        "mean_reward": float(frame["reward"].mean()),
        "min_propensity": float(frame["propensity"].min()),
        "part": str(part) if part else None,
    }
