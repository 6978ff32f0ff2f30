"""The arm-kind protocol: what one way of drafting needs, does and costs.

An arm kind (plain decoding, prompt lookup, a draft model, early exit, ...) is one class here,
one instance in the registry (``decoding.arms.KINDS``). Everything in decoding that used to
branch on the kind string asks the arm's kind instead:

- the models file: which settings the kind takes and how they are checked (``keys``, ``parse``);
- loading: what it needs loaded or checked before anything decodes (``load``), its drafting
  model's size (``n_params_m``);
- transformers' ``generate()``: the keyword arguments that select it, the model whose
  ``generation_config`` holds its assistant settings, the module whose calls are draft calls
  (``assisted_kwargs``);
- the project's loop (``decoding.specloop``): its drafter (``drafter``);
- alignment and exact counts: its own greedy output (``greedy`` / ``arm_greedy``), or for a
  model-free kind, its counts replayed exactly from the target's greedy output (``replay``);
- calibration: one drafting step's seconds on this machine (``step_seconds``).

The defaults below are those of a kind that drafts with nothing: a new kind overrides what it
does. ``tests/decoding/test_arm_kinds.py`` runs every registered kind through the same contract.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from typing import Any, ClassVar, Iterator, Mapping, Sequence

#: what the protocol's methods take, named for the reader: an arm is a ``decoding.models.ArmConfig`` and a session a
#: ``decoding.session.DecodingSession``. Both are built on this registry (a models file is parsed by its kinds, a
#: session loads what they need), so the kinds take them as they come and import neither.
ArmConfig = Any
DecodingSession = Any

#: settings every arm takes, whatever its kind
ARM_COMMON = ("name", "kind", "family")
#: settings transformers reads from the assistant's ``generation_config`` (draft and early-exit arms)
ASSISTANT_KEYS = ("num_assistant_tokens", "num_assistant_tokens_schedule", "assistant_confidence_threshold")
SCHEDULES = ("constant", "heuristic", "heuristic_transient")


class ModelsConfigError(ValueError):
    """The models file is malformed; the message names the file, the key and what was expected."""


def typed(table: Mapping[str, Any], key: str, types: type | tuple[type, ...], where: str, default: Any = None) -> Any:
    """``table[key]`` checked to be of ``types`` (a bool is not an int here); ``default`` when absent."""
    if key not in table:
        return default
    v = table[key]
    names = " or ".join(t.__name__ for t in (types if isinstance(types, tuple) else (types,)))
    if isinstance(v, bool) and bool not in (types if isinstance(types, tuple) else (types,)):
        raise ModelsConfigError(f"{where}: `{key}` must be {names}; got {v!r}")
    if not isinstance(v, types):
        raise ModelsConfigError(f"{where}: `{key}` must be {names}; got {v!r} ({type(v).__name__})")
    return v


def positive_int(table: Mapping[str, Any], key: str, where: str, default: int | None = None) -> int | None:
    v = typed(table, key, int, where, default)
    if v is not None and v < 1:
        raise ModelsConfigError(f"{where}: `{key}` must be an integer >= 1; got {v}")
    return v


#: the most tokens an arm may draft per round (``num_assistant_tokens``, ``prompt_lookup_num_tokens``,
#: ``datastore_tokens``): acceptance falls fast with depth, so a larger value is a typing error
MAX_DRAFT_TOKENS = 256
#: the settings that fix how many tokens an arm drafts per round
DRAFT_LENGTH_KEYS = ("num_assistant_tokens", "prompt_lookup_num_tokens", "datastore_tokens")


def draft_tokens(table: Mapping[str, Any], key: str, where: str, default: int | None = None) -> int | None:
    """A draft length (tokens per round): an integer in [1, ``MAX_DRAFT_TOKENS``]."""
    v = positive_int(table, key, where, default)
    if v is not None and v > MAX_DRAFT_TOKENS:
        raise ModelsConfigError(f"{where}: `{key}` (tokens drafted per round) must be at most {MAX_DRAFT_TOKENS}; got {v}")
    return v


def check_draft_lengths(session: "DecodingSession") -> None:
    """Refuse an arm whose draft length leaves no room in the target's context for one prompt token
    and ``max_new_tokens`` (``ArmNotSupportedError`` naming the arm and the key), before a prompt is blamed."""
    from ..loading import ArmNotSupportedError

    limit = session.target.context_length
    if not limit:
        return
    for arm in session.config.arms:
        for key in DRAFT_LENGTH_KEYS:
            v = getattr(arm, key, None) if hasattr(arm, key) else arm.option(key)
            if v is not None and 1 + session.max_new_tokens + int(v) > limit:
                raise ArmNotSupportedError(
                    f"arm {arm.name!r}: `{key}` = {v} drafts more tokens per round than the target's context of {limit} "
                    f"positions leaves beside a prompt and max_new_tokens = {session.max_new_tokens} (at most "
                    f"{max(limit - 1 - session.max_new_tokens, 0)})")


@contextmanager
def artifact_errors(arm: Any, what: str, path: str) -> Iterator[None]:
    """Errors of loading a drafter's files (``decoding.artifacts``) as the session's, naming the arm and the
    file: a missing or bad file ``ModelLoadError``, one made for another target ``ArmNotSupportedError``."""
    from logging_data.records import RecordError

    from ..artifacts import TargetMismatchError
    from ..loading import ArmNotSupportedError, ModelLoadError

    try:
        yield
    except TargetMismatchError as exc:
        raise ArmNotSupportedError(f"arm {arm.name!r}: {exc}") from None
    except (FileNotFoundError, RecordError) as exc:
        raise ModelLoadError(f"arm {arm.name!r}: cannot load the {what} at {path}: {exc}") from None


def parse_assistant(table: Mapping[str, Any], where: str) -> dict[str, Any]:
    """The assistant settings (``ASSISTANT_KEYS``) of a kind that drafts with a model through ``generate()``."""
    out: dict[str, Any] = {"num_assistant_tokens": draft_tokens(table, "num_assistant_tokens", where)}
    sched = typed(table, "num_assistant_tokens_schedule", str, where)
    if sched is not None and sched not in SCHEDULES:
        raise ModelsConfigError(f"{where}: `num_assistant_tokens_schedule` must be one of {', '.join(SCHEDULES)}; got {sched!r}")
    out["num_assistant_tokens_schedule"] = sched
    out["assistant_confidence_threshold"] = confidence_threshold(table, where)
    return out


def confidence_threshold(table: Mapping[str, Any], where: str) -> float | None:
    """``assistant_confidence_threshold``: a drafter stops a round at its first token less likely than this."""
    thr = typed(table, "assistant_confidence_threshold", (int, float), where)
    if thr is not None and not (math.isfinite(thr) and 0 <= thr < 1):
        raise ModelsConfigError(f"{where}: `assistant_confidence_threshold` must be in [0, 1); got {thr}")
    return None if thr is None else float(thr)


class ArmKind:
    """One kind of arm. Subclasses set ``name`` (the models file's ``kind``) and ``label`` (for
    messages) and override what differs from a kind that drafts with nothing."""

    name: ClassVar[str] = ""
    label: ClassVar[str] = ""
    #: settings the kind takes beyond ``ARM_COMMON``, in the order error messages list them
    keys: ClassVar[tuple[str, ...]] = ()
    #: plain decoding itself: its outcome is plain decoding's, it pays no round cost
    plain: ClassVar[bool] = False
    #: drafts with no model: its drafting step costs nothing and ``replay`` gives its exact counts
    model_free: ClassVar[bool] = False
    #: loads a drafting model of its own beside the target (a second model's memory): the drafter
    #: commands, which need the target alone, leave such arms out (``decoding.drafters.states.target_session``)
    separate_model: ClassVar[bool] = False
    #: runs a model of its own whose greedy output can be compared with the target's (alignment)
    own_output: ClassVar[bool] = False
    #: transformers' ``generate()`` can run it; otherwise ``DecodingSession.assisted`` runs it through
    #: the project's loop (``decoding.specloop``), with the same output and counts
    generate: ClassVar[bool] = True
    #: the settings of a small arm of this kind (a models file's ``[[arms]]`` table without name and
    #: kind), run by the contract suite on its tiny models; a path ``"draft"`` names the tiny draft
    example: ClassVar[Mapping[str, Any]] = {}

    # -- the models file -------------------------------------------------------------------------
    def parse(self, table: Mapping[str, Any], where: str) -> dict[str, Any]:
        """The kind's settings of one ``[[arms]]`` table (already checked to hold only ``valid_keys``):
        ``ArmConfig`` field values, or other keys (they land in ``ArmConfig.options``)."""
        return {}

    def valid_keys(self) -> tuple[str, ...]:
        return ARM_COMMON + self.keys

    def n_draft_tokens(self, arm: "ArmConfig") -> int | None:
        """Tokens proposed per round when the settings fix them (None: the drafting model's default)."""
        return arm.num_assistant_tokens

    def generate_kwargs(self, arm: "ArmConfig") -> dict[str, Any]:
        """Keyword arguments for the target's ``generate()`` that select this arm (no model objects)."""
        return {}

    def log_attrs(self, arm: "ArmConfig") -> dict[str, Any]:
        """Descriptive attributes the log's ``Arm`` records beyond kind, family and draft tokens."""
        return {}

    # -- loading ---------------------------------------------------------------------------------
    def load(self, session: "DecodingSession", arm: "ArmConfig", loaded: dict[str, Any]) -> None:
        """Load and check what the arm needs before anything decodes (``loaded``: path -> model, shared
        by the session's arms so one file loads once); raise ``ArmNotSupportedError`` when it cannot run."""

    def models(self, session: "DecodingSession", arm: "ArmConfig") -> list[Any]:
        """The torch modules the arm adds to the session (packed for the CPU kernels with the target's)."""
        return []

    def n_params_m(self, session: "DecodingSession", arm: "ArmConfig") -> float | None:
        """Parameters (millions) of what drafts for the arm; None for a kind that runs no model."""
        return None

    # -- transformers' generate() ----------------------------------------------------------------
    def assisted_kwargs(self, session: "DecodingSession", arm: "ArmConfig") -> tuple[dict[str, Any], Any, Any]:
        """(model-bearing ``generate()`` kwargs, the model whose ``generation_config`` takes the arm's
        assistant settings or None, the drafting module whose forward calls are draft calls or None)."""
        return {}, None, None

    def block_model(self, session: "DecodingSession", arm: "ArmConfig") -> Any:
        """The model whose ``generation_config.num_assistant_tokens`` is the arm's default draft length."""
        return session.target.model

    # -- the project's loop ----------------------------------------------------------------------
    def drafter(self, session: "DecodingSession", arm: "ArmConfig") -> Any:
        """The ``decoding.specloop`` drafter of the arm (a model-free kind's ``free_drafter``)."""
        if self.model_free:
            return self.free_drafter(arm, session.eos_ids)
        from ..loading import ArmNotSupportedError

        raise ArmNotSupportedError(f"arm {arm.name!r}: kind {arm.kind!r} has no drafter in the project's loop")

    def looped(self, arm: "ArmConfig") -> bool:
        """Whether ``DecodingSession.assisted`` decodes the arm through the project's loop (kinds
        ``generate()`` cannot run, or an arm that asks for the loop) rather than ``generate()``."""
        return not self.generate

    def free_drafter(self, arm: "ArmConfig", eos: Any) -> Any:
        """A model-free kind's drafter, which needs nothing loaded (``eos``: the target's EOS ids)."""
        raise NotImplementedError(f"kind {self.name!r} is model-free and must define free_drafter(arm, eos)")

    # -- the arm's own output and exact counts ----------------------------------------------------
    def greedy(self, session: "DecodingSession", arm: "ArmConfig", batch: Sequence[Sequence[int]],
               max_new_tokens: int | None) -> list[list[int]]:
        """The arm's own greedy tokens for each row of ``batch`` (target token ids)."""
        from ..loading import ArmNotSupportedError

        raise ArmNotSupportedError(f"arm {arm.name!r} (kind {arm.kind}) runs no model of its own; greedy() takes the target, "
                                   f"a draft arm or an early-exit arm")

    def own_output_key(self, session: "DecodingSession", arm: "ArmConfig") -> Any:
        """What the arm's own greedy output depends on: arms with the same key share one greedy run
        in a build (the arm itself by default; a draft's arms of any k: the draft)."""
        return ("arm", arm.name)

    def arm_greedy(self, session: "DecodingSession", arm: "ArmConfig", prompts: Sequence[str],
                   max_new_tokens: int | None) -> list[list[int] | None]:
        """The arm's own greedy output per prompt in the target's token space; None per prompt for a
        kind without output of its own."""
        if not self.own_output:
            return [None] * len(prompts)
        return self.greedy(session, arm, [session.encode(p, max_new_tokens) for p in prompts], max_new_tokens)

    def replay(self, arm: "ArmConfig", ids: Sequence[int], target: Sequence[int], max_new_tokens: int,
               eos: Any) -> Any:
        """A model-free kind's exact counts on the target's greedy output ``target`` (an
        ``alignment.Verification``: its drafter's rounds replayed, ``specloop.replay_drafter``);
        None for a kind whose counts need its drafting model."""
        if not self.model_free:
            return None
        from ..specloop import replay_drafter

        return replay_drafter(self.free_drafter(arm, eos), ids, target, max_new_tokens)

    def replays(self, arm: "ArmConfig") -> bool:
        """Whether ``replay_counts`` gives the arm's exact counts (model-free kinds, and model drafts
        that decode through the project's loop)."""
        return self.model_free

    def replay_counts(self, session: "DecodingSession", arm: "ArmConfig", ids: Sequence[int], target: Sequence[int],
                      max_new_tokens: int) -> Any:
        """(``alignment.Verification``, draft calls): the arm's exact counts on the target's greedy
        output ``target``, as ``session.assisted`` would count them; None where they need decoding."""
        if not self.replays(arm):
            return None
        return self.replay(arm, ids, target, max_new_tokens, session.eos_ids), 0

    # -- calibration -----------------------------------------------------------------------------
    def step_seconds(self, session: "DecodingSession", arm: "ArmConfig", timer: Any) -> float:
        """Seconds of one drafting step on this machine (0 for a kind that runs no model). ``timer``
        (``decoding.calibrate.StepTimer``): ``timer.step(model, vocab_size, context_length=None)``
        times one cached forward step of a model at the calibration's context; ``timer.call(fn)``
        the median seconds of ``fn()``, with the calibration's warm-up and repeats."""
        return 0.0

    def prefill_token_seconds(self, session: "DecodingSession", arm: "ArmConfig", timer: Any) -> float:
        """Seconds each prompt token adds to the prefill of the model this arm drafts with (0 for a
        kind that runs no model of its own on the prompt: prompt lookup, a head on the target's
        hidden states, a store). ``timer.prefill(model, vocab_size, context_length=None)`` times it."""
        return 0.0
