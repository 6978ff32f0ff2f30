"""Kind ``draft``: a separate draft model proposes tokens (transformers' ``assistant_model``); with
``universal = true`` a draft with another tokenizer (universal assisted decoding).

Where it decodes: through transformers' ``generate()`` by default, whose assistant stops a round
early below a confidence threshold it re-fits as it goes; with ``loop = true`` through the
project's loop (``decoding.specloop.ModelDraft``: a constant ``num_assistant_tokens`` a round),
whose counts replay exactly from one forward pass of the draft over the target's greedy output
(``decoding.draft_replay``), so a log of such an arm needs no assisted decoding::

    [[arms]]
    name = "draft-k3"
    kind = "draft"
    draft = "packaged:qwen2.5-coder-0.5b"
    num_assistant_tokens = 3
    loop = true
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from ..pricing import DEFAULT_DRAFT_TOKENS
from .base import ASSISTANT_KEYS, ArmKind, ModelsConfigError, parse_assistant, typed


class Draft(ArmKind):
    name = "draft"
    label = "draft-model"
    keys = ("draft", "universal") + ASSISTANT_KEYS + ("loop",)
    own_output = True
    separate_model = True
    example = {"draft": "draft", "num_assistant_tokens": 3, "num_assistant_tokens_schedule": "constant"}

    def parse(self, table: Mapping[str, Any], where: str) -> dict[str, Any]:
        draft = typed(table, "draft", str, where)
        if not draft or not draft.strip():
            raise ModelsConfigError(f"{where}: kind 'draft' needs `draft` (a local HF directory, a .gguf file or packaged:NAME)")
        out = {"draft": draft, "universal": typed(table, "universal", bool, where, False), **parse_assistant(table, where)}
        if typed(table, "loop", bool, where, False):
            if out["universal"]:
                raise ModelsConfigError(f"{where}: `loop = true` drafts with a draft of the target's own tokenizer; "
                                        f"`universal = true` needs transformers' generate() (drop one of them)")
            if out["num_assistant_tokens_schedule"] not in (None, "constant") or out["assistant_confidence_threshold"] is not None:
                raise ModelsConfigError(f"{where}: `loop = true` drafts a constant num_assistant_tokens a round; "
                                        f"`num_assistant_tokens_schedule` other than \"constant\" and "
                                        f"`assistant_confidence_threshold` are generate()'s (drop them, or drop loop)")
            out["loop"] = True
        return out

    def looped(self, arm: Any) -> bool:
        return bool(arm.option("loop", False))

    def replays(self, arm: Any) -> bool:
        return self.looped(arm) and not arm.universal

    def replay_counts(self, session: Any, arm: Any, ids: Any, target: Any, max_new_tokens: int) -> Any:
        if not self.replays(arm):
            return None
        from ..draft_replay import ChainReplay, replay_counts

        return replay_counts(ChainReplay(self._k(arm), len(ids), target, self.next_tokens(session, arm, ids, target)),
                             ids, target, max_new_tokens)

    def next_tokens(self, session: Any, arm: Any, ids: Any, target: Any) -> list[int]:
        """``draft_replay.next_tokens`` of the arm's draft, kept for the last few prompts: every arm of
        one draft (k settings, the hybrid) replays from the same pass."""
        from ..draft_replay import next_tokens

        model = session.draft(arm.name).model
        memo = session.__dict__.setdefault("_next_tokens_memo", {})
        key = (id(model), tuple(int(t) for t in ids), tuple(int(t) for t in target))
        if key not in memo:
            if len(memo) >= 16:
                memo.pop(next(iter(memo)))
            memo[key] = next_tokens(model, ids, target)
        return memo[key]

    def _k(self, arm: Any) -> int:

        return arm.num_assistant_tokens or DEFAULT_DRAFT_TOKENS

    def log_attrs(self, arm: Any) -> dict[str, Any]:
        return {**({"universal": True} if arm.universal else {}), **({"loop": True} if self.looped(arm) else {})}

    def load(self, session: Any, arm: Any, loaded: dict[str, Any]) -> None:
        from ..loading import ArmNotSupportedError, describe_tokenizer, load_model, same_tokenizer

        path = session.config.resolve(arm.draft)
        if path not in loaded:
            loaded[path] = load_model(path, session.device, session.config.target.dtype)
        d = loaded[path]
        same = same_tokenizer(session.target, d)
        if not same and not arm.universal:
            raise ArmNotSupportedError(
                f"arm {arm.name!r}: the draft's tokenizer differs from the target's "
                f"(target: {describe_tokenizer(session.target)}; draft: {describe_tokenizer(d)}); "
                f"set `universal = true` on the arm to use universal assisted decoding"
            )
        session._drafts[arm.name] = d
        session._universal[arm.name] = not same

    def models(self, session: Any, arm: Any) -> list[Any]:
        return [session.draft(arm.name).model]

    def n_params_m(self, session: Any, arm: Any) -> float | None:
        return session.draft(arm.name).n_params / 1e6

    def assisted_kwargs(self, session: Any, arm: Any) -> tuple[dict[str, Any], Any, Any]:
        d = session.draft(arm.name)
        kwargs: dict[str, Any] = {"assistant_model": d.model}
        if session._universal[arm.name]:
            kwargs["tokenizer"] = session.target.tokenizer
            kwargs["assistant_tokenizer"] = d.tokenizer
        return kwargs, d.model, d.model

    def block_model(self, session: Any, arm: Any) -> Any:
        return session.draft(arm.name).model

    def drafter(self, session: Any, arm: Any) -> Any:
        from ..loading import ArmNotSupportedError
        from ..specloop import ModelDraft

        if session._universal[arm.name]:
            raise ArmNotSupportedError(f"arm {arm.name!r}: the project's loop drafts with a draft of the target's own "
                                       f"tokenizer only; this draft has another (use assisted(), transformers' generate)")
        return ModelDraft(session.draft(arm.name).model, self._k(arm))

    def greedy(self, session: Any, arm: Any, batch: Sequence[Sequence[int]], max_new_tokens: int | None) -> list[list[int]]:
        from ..loading import ArmNotSupportedError

        if session._universal[arm.name]:
            raise ArmNotSupportedError(f"arm {arm.name!r} uses another tokenizer; use arm_greedy(prompts, arm) for its own output")
        return session._greedy(session.draft(arm.name), batch, max_new_tokens)

    def own_output_key(self, session: Any, arm: Any) -> Any:
        # the draft decodes alone: its greedy output is the same for every arm of this draft (any k, any hybrid)
        return ("draft", session.config.resolve(arm.draft))

    def arm_greedy(self, session: Any, arm: Any, prompts: Sequence[str], max_new_tokens: int | None) -> list[list[int] | None]:
        if not session._universal[arm.name]:
            return super().arm_greedy(session, arm, prompts, max_new_tokens)
        # another tokenizer: the draft decodes its own encoding; its text is re-encoded for the target
        d = session.draft(arm.name)
        out = session._greedy(d, [session._encode(d, p, max_new_tokens) for p in prompts], max_new_tokens)
        texts = d.tokenizer.batch_decode(out, skip_special_tokens=True)
        return [list(session.target.tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts]

    def step_seconds(self, session: Any, arm: Any, timer: Any) -> float:
        d = session.draft(arm.name)
        return timer.step(d.model, d.model.config.get_text_config().vocab_size, d.context_length)

    def prefill_token_seconds(self, session: Any, arm: Any, timer: Any) -> float:
        # the draft reads the whole prompt in its first call of every decode (live and in generate())
        d = session.draft(arm.name)
        return timer.prefill(d.model, d.model.config.get_text_config().vocab_size, d.context_length)
