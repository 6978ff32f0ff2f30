"""Drafting heads on the target's own hidden states (EAGLE-style), over a reduced vocabulary.

A head drafts from what the target already computed: given the target's final (normed) hidden
state ``h_t`` at the last position it verified and the embedding of the token it chose there
(``x_{t+1}``), the head predicts the next hidden state ``ĥ_{t+1}`` and its token
``x_{t+2} = argmax(ĥ_{t+1} · W[V])``, where ``W`` is the target's own output layer restricted to a
vocabulary ``V`` of tokens frequent in the head's domain (a token outside ``V`` is simply never
proposed; the target's verification keeps the output exact). Drafting ``k`` tokens feeds each
prediction back in. A head is a few matrix products: on a launch-bound GPU it costs a small
fraction of a target step, and it needs no second model or cache.

- ``FeatureHead``: ``fc([h; e]) -> blocks of residual MLPs -> ĥ`` (the torch module).
- ``collect``: (h_t, x_{t+1}, h_{t+1}, x_{t+2}) training rows from the target's greedy outputs,
  one batched forward per batch of sequences; checks each sequence *is* the greedy output.
- ``train_head``: regression on ``h_{t+1}`` plus cross-entropy on ``x_{t+2}`` over ``V``
  (EAGLE's loss), seeded; saved as safetensors + JSON (``save_head``/``load_head``).
- ``HeadDraft``: the ``decoding.specloop`` drafter (it receives the target's hidden state of each
  round); ``replay_head``: the same rounds replayed on a greedy output's hidden states, so a log
  of head arms costs one target forward per prompt (the counts equal the live loop's up to the
  numerics of a batched forward, which ``examples/heads.py`` measures).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np


def _torch():
    import torch

    return torch


def _module_class():
    torch = _torch()
    nn = torch.nn

    class FeatureHead(nn.Module):
        """``ĥ_{t+1} = blocks(fc([h_t; e(x_{t+1})]))``; ``vocab``: the token ids it may propose."""

        def __init__(self, hidden: int, vocab: Sequence[int], n_blocks: int = 2, expansion: int = 2) -> None:
            super().__init__()
            self.hidden, self.n_blocks, self.expansion = int(hidden), int(n_blocks), int(expansion)
            self.register_buffer("vocab", torch.tensor(list(vocab), dtype=torch.long), persistent=True)
            self.fc = nn.Linear(2 * hidden, hidden)
            self.blocks = nn.ModuleList(
                nn.Sequential(nn.LayerNorm(hidden), nn.Linear(hidden, expansion * hidden), nn.SiLU(),
                              nn.Linear(expansion * hidden, hidden)) for _ in range(n_blocks))

        def forward(self, h: Any, e: Any) -> Any:
            x = self.fc(torch.cat([h, e], dim=-1))
            for block in self.blocks:
                x = x + block(x)
            return x

    return FeatureHead


def feature_head(hidden: int, vocab: Sequence[int], n_blocks: int = 2, expansion: int = 2) -> Any:
    """A new ``FeatureHead`` (torch module)."""
    return _module_class()(hidden, vocab, n_blocks, expansion)


def embedding_and_output(model: Any) -> tuple[Any, Any]:
    """(input embedding, output weight) of a causal LM."""
    from .cpu_linear import dense_weight

    return model.get_input_embeddings(), dense_weight(model.get_output_embeddings())


# -- training rows --------------------------------------------------------------------------------
@dataclass
class Rows:
    """Training rows, one per position of a greedy output: ``h`` (n, H) float16, ``x_next`` (n,),
    ``h_next`` (n, H) float16, ``x_next2`` (n,), and ``group`` (n,): the sequence each row is from."""

    h: np.ndarray
    x_next: np.ndarray
    h_next: np.ndarray
    x_next2: np.ndarray
    group: np.ndarray


def forward_batches(model: Any, sequences: Sequence[Sequence[int]], batch_size: int = 16) -> Iterable[tuple[list[int], Any]]:
    """The target's forward (``output_hidden_states=True``, no grad) over ``sequences`` in right-padded
    batches of similar lengths: yields (the batch's indices into ``sequences``, the model's output);
    row r of the output is ``sequences[indices[r]]``, its first ``len(...)`` positions real."""
    torch = _torch()
    order = sorted(range(len(sequences)), key=lambda i: len(sequences[i]))  # similar lengths together
    with torch.no_grad():
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            width = max(len(sequences[i]) for i in idx)
            x = torch.zeros((len(idx), width), dtype=torch.long)
            mask = torch.zeros((len(idx), width), dtype=torch.long)
            for r, i in enumerate(idx):
                x[r, :len(sequences[i])] = torch.tensor(list(sequences[i]))
                mask[r, :len(sequences[i])] = 1
            yield idx, model(input_ids=x.to(model.device), attention_mask=mask.to(model.device), output_hidden_states=True)


def hidden_states(model: Any, sequences: Sequence[Sequence[int]], batch_size: int = 16) -> list[Any]:
    """The target's final normed hidden states (T, H) float32 of each sequence, and a check that
    the sequence is greedy: returns (states, argmax) per sequence (argmax[t] = the target's choice after t)."""
    results: dict[int, tuple[Any, Any]] = {}
    for idx, res in forward_batches(model, sequences, batch_size):
        h = res.hidden_states[-1].float()
        arg = res.logits.argmax(-1)
        for r, i in enumerate(idx):
            n = len(sequences[i])
            results[i] = (h[r, :n].cpu(), arg[r, :n].cpu())
    return [results[i] for i in range(len(sequences))]


def is_greedy(argmax: Any, sequence: Sequence[int], prompt_len: int) -> bool:
    """Whether every token after the prompt is the target's argmax after the one before it."""
    L = len(sequence) - prompt_len
    return bool(L > 0 and all(int(argmax[t]) == int(sequence[t + 1]) for t in range(prompt_len - 1, len(sequence) - 1)))


def collect_from_states(prompts: Sequence[Sequence[int]], outputs: Sequence[Sequence[int]], states: Sequence[Any],
                        prompt_argmax: Sequence[Any] | None = None) -> Rows:
    """Training rows of greedy ``outputs`` given their hidden states ((P + L, H) each).

    ``prompt_argmax`` (per sequence, the target's argmax after each position, as ``hidden_states``
    returns it): rows from the prompt's positions too, labelled with the target's own choice
    (``x_{t+2}`` := its argmax after ``x_{t+1}``) rather than the prompt's next token. The states
    are already there (one forward over prompt + output), so these rows cost nothing to collect:
    the text the target reads is also text it predicts."""
    hs, xn, hn, xn2, grp = [], [], [], [], []
    for g, (h, p, o) in enumerate(zip(states, prompts, outputs)):
        P, L = len(p), len(o)
        if L < 2:
            continue
        seq = list(p) + list(o)
        first = 0 if prompt_argmax is not None else P - 1
        ts = np.arange(first, P + L - 2)
        hs.append(np.asarray(h[ts], dtype=np.float16))
        hn.append(np.asarray(h[ts + 1], dtype=np.float16))
        xn.append(np.asarray([seq[t + 1] for t in ts]))
        if prompt_argmax is not None:
            arg = np.asarray(prompt_argmax[g])
            xn2.append(np.asarray([int(arg[t + 1]) if t + 1 < P - 1 else seq[t + 2] for t in ts]))
        else:
            xn2.append(np.asarray([seq[t + 2] for t in ts]))
        grp.append(np.full(len(ts), g))
    if not hs:
        raise ValueError("collect: no sequence was the target's greedy output; nothing to train on")
    return Rows(np.concatenate(hs), np.concatenate(xn), np.concatenate(hn), np.concatenate(xn2), np.concatenate(grp))


def collect(model: Any, prompts: Sequence[Sequence[int]], outputs: Sequence[Sequence[int]], batch_size: int = 16) -> tuple[Rows, list[bool]]:
    """Training rows from ``prompts`` and their greedy ``outputs`` (token ids), and per sequence
    whether ``outputs`` is the target's greedy output (every token its argmax); rows come only from
    the sequences that are (``group``: the sequence's index in ``prompts``)."""
    seqs = [list(p) + list(o) for p, o in zip(prompts, outputs)]
    states = hidden_states(model, seqs, batch_size)
    greedy = [is_greedy(arg, seq, len(p)) for (_, arg), seq, p in zip(states, seqs, prompts)]
    keep = [i for i, ok in enumerate(greedy) if ok]
    rows = collect_from_states([prompts[i] for i in keep], [outputs[i] for i in keep], [states[i][0].numpy() for i in keep])
    rows.group = np.asarray(keep)[rows.group]
    return rows, greedy


def frequent_vocabulary(tokens: Iterable[int], size: int, always: Iterable[int] = ()) -> list[int]:
    """The ``size`` most frequent token ids of ``tokens`` (ties by id), plus ``always`` (e.g. EOS)."""
    counts: dict[int, int] = {}
    for t in tokens:
        counts[int(t)] = counts.get(int(t), 0) + 1
    chosen = [t for t, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:size]]
    return sorted(set(chosen) | {int(t) for t in always})


def one_cycle(opt: Any, lr: float, total_steps: int) -> Any:
    """torch's ``OneCycleLR`` over ``total_steps`` with a 10% warm-up, or 15% at 10 steps, where 10%
    is exactly one step and torch divides by the warm-up's length minus one (zero)."""
    torch = _torch()
    pct = 0.1 if abs(0.1 * total_steps - 1.0) > 1e-9 else 0.15
    return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=int(total_steps), pct_start=pct)


def train_head(model: Any, rows: Rows, vocab: Sequence[int], *, n_blocks: int = 2, expansion: int = 2, epochs: int = 4,
               batch_size: int = 256, lr: float = 1e-3, ce_weight: float = 0.1, noise: float = 0.0, seed: int = 0,
               progress: bool = False) -> tuple[Any, dict[str, Any]]:
    """A ``FeatureHead`` fitted to ``rows``: SmoothL1 on ``h_{t+1}`` + ``ce_weight`` × cross-entropy of
    ``x_{t+2}`` over ``vocab`` (rows whose ``x_{t+2}`` is outside it count in the regression only).
    Returns the head (eval mode) and a record (loss per epoch, vocabulary coverage)."""
    torch = _torch()
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    embed, out_w = embedding_and_output(model)
    hidden = rows.h.shape[1]
    head = feature_head(hidden, vocab, n_blocks, expansion)
    w_sub = out_w.detach()[head.vocab].float()
    index = {int(t): i for i, t in enumerate(vocab)}
    target_idx = np.asarray([index.get(int(t), -100) for t in rows.x_next2])
    opt = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=0.0)
    n = len(rows.h)
    steps = max(1, epochs * ((n + batch_size - 1) // batch_size))
    sched = one_cycle(opt, lr, steps)
    losses = []
    head.train()
    for epoch in range(epochs):
        perm = rng.permutation(n)
        total = 0.0
        for start in range(0, n, batch_size):
            b = perm[start:start + batch_size]
            h = torch.from_numpy(rows.h[b].astype(np.float32))
            if noise:
                h = h + noise * torch.randn_like(h)
            with torch.no_grad():
                e = embed(torch.from_numpy(rows.x_next[b]).long()).float()
            target_h = torch.from_numpy(rows.h_next[b].astype(np.float32))
            pred = head(h, e)
            loss = torch.nn.functional.smooth_l1_loss(pred, target_h)
            y = torch.from_numpy(target_idx[b]).long()
            if (y >= 0).any():
                loss = loss + ce_weight * torch.nn.functional.cross_entropy(pred @ w_sub.T, y, ignore_index=-100)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(b)
        losses.append(total / n)
        if progress:
            print(f"  epoch {epoch + 1}/{epochs}: loss {losses[-1]:.4f}", flush=True)
    head.eval()
    return head, {"loss_per_epoch": losses, "n_rows": int(n), "vocab_size": len(vocab),
                  "vocab_coverage": float((target_idx >= 0).mean()), "epochs": epochs, "seed": seed,
                  "n_blocks": n_blocks, "expansion": expansion, "lr": lr, "ce_weight": ce_weight}


#: the largest hidden size, blocks, expansion and vocabulary a head's file may declare: a larger value is a corrupt
#: or foreign file, refused before anything is allocated
MAX_HIDDEN, MAX_BLOCKS, MAX_EXPANSION, MAX_VOCAB = 1 << 16, 64, 64, 1 << 24
HEAD_FORMAT = "draftpick.head/1"


def head_fields() -> tuple[Any, ...]:
    """``head.json``'s schema (``logging_data.records``): the head's shape, its training record, and
    ``made_for`` (``decoding.artifacts``; absent in heads written before it was recorded)."""
    from logging_data.records import integer, mapping, text

    return (text("format", (HEAD_FORMAT,), required=False), integer("hidden", 1, MAX_HIDDEN), integer("n_blocks", 0, MAX_BLOCKS),
            integer("expansion", 1, MAX_EXPANSION), integer("vocab_size", 1, MAX_VOCAB), mapping("training", required=False),
            mapping("made_for", required=False))


def head_shapes(meta: Mapping[str, Any]) -> dict[str, tuple[int, ...]]:
    """Tensor name -> shape of the weights of a head of ``meta``'s shape (``FeatureHead.state_dict``)."""
    H, E = int(meta["hidden"]), int(meta["expansion"]) * int(meta["hidden"])
    shapes = {"vocab": (int(meta["vocab_size"]),), "fc.weight": (H, 2 * H), "fc.bias": (H,)}
    for i in range(int(meta["n_blocks"])):
        shapes.update({f"blocks.{i}.0.weight": (H,), f"blocks.{i}.0.bias": (H,), f"blocks.{i}.1.weight": (E, H),
                       f"blocks.{i}.1.bias": (E,), f"blocks.{i}.3.weight": (H, E), f"blocks.{i}.3.bias": (H,)})
    return shapes


def save_head(head: Any, folder: str | os.PathLike, record: dict[str, Any] | None = None, *,
              made_for: Mapping[str, Any] | None = None) -> Path:
    """``folder/head.safetensors`` and ``folder/head.json`` (its shape, vocabulary size, training record and
    ``made_for``: the identity of the target it was trained on, ``decoding.artifacts.target_identity``)."""
    from safetensors.torch import save_file

    from .artifacts import check_identity_record

    folder = Path(folder)
    if made_for is not None:
        check_identity_record(made_for, "save_head")
    folder.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in head.state_dict().items()}, str(folder / "head.safetensors"))
    meta = {"format": HEAD_FORMAT, "hidden": head.hidden, "n_blocks": head.n_blocks, "expansion": head.expansion,
            "vocab_size": int(len(head.vocab)), "training": record or {}, **({"made_for": dict(made_for)} if made_for else {})}
    (folder / "head.json").write_text(json.dumps(meta, indent=2, default=str) + "\n")
    return folder


def _missing_files(folder: Path, found: list[str] | None) -> str:
    return f"head {folder}: expected head.json and head.safetensors; found {found if found is not None else 'no such folder'}"


def read_head_record(folder: str | os.PathLike) -> dict[str, Any]:
    """``head.json`` of the head in ``folder``, checked (``head_fields``), and ``head.safetensors``'s header
    checked against it: every tensor the shape declares, of that shape, and no other; nothing allocated.
    ``FileNotFoundError`` or ``logging_data.records.RecordError``, naming the file."""
    from logging_data.records import RecordError

    from .artifacts import read_artifact_record

    meta, meta_path, weights = read_artifact_record(folder, "head.json", "head.safetensors", head_fields(), _missing_files)
    found = _safetensors_header(weights)
    want = head_shapes(meta)
    problems = [f"{name} is missing (expected shape {list(shape)})" for name, shape in want.items() if name not in found]
    problems += [f"{name} has shape {list(found[name][0])}; {meta_path.name} declares {list(shape)}"
                 for name, shape in want.items() if name in found and found[name][0] != shape]
    problems += [f"{name} is not a tensor of a head of this shape" for name in found if name not in want]
    if "vocab" in found and not found["vocab"][1].startswith(("I", "U")):
        problems.append(f"vocab must hold integer token ids; its dtype is {found['vocab'][1]}")
    problems += [f"{name} must hold floating-point weights; its dtype is {dtype}" for name, (_, dtype) in found.items()
                 if name != "vocab" and dtype not in ("F16", "BF16", "F32", "F64")]
    if problems:
        raise RecordError(f"{weights}: " + "; ".join(problems[:4]) + (f"; and {len(problems) - 4} more" if len(problems) > 4 else ""))
    return meta


def _safetensors_header(path: Path) -> dict[str, tuple[tuple[int, ...], str]]:
    """Tensor name -> (shape, dtype) from a safetensors file's header (nothing else read); a corrupt file names itself."""
    from safetensors import safe_open

    from logging_data.records import RecordError

    try:
        with safe_open(str(path), framework="pt") as f:
            return {k: (tuple(int(n) for n in f.get_slice(k).get_shape()), str(f.get_slice(k).get_dtype())) for k in f.keys()}
    except Exception as exc:  # safetensors raises its own SafetensorError, not a ValueError
        raise RecordError(f"{path}: not a safetensors file ({exc})") from None


def check_head_target(folder: str | os.PathLike, meta: Mapping[str, Any], target: Mapping[str, Any],
                      allow_other_target: bool = False) -> None:
    """Refuse the head in ``folder`` (``read_head_record``'s ``meta``) for the target of identity ``target``
    (``decoding.artifacts``): made for another tokenizer or target, another hidden size, or token ids the
    target does not have (``TargetMismatchError``, naming both sides). Reads the head's vocabulary only."""
    from safetensors import safe_open

    from logging_data.records import RecordError

    from .artifacts import TargetMismatchError, check_made_for, describe

    folder = Path(folder)
    what = f"the head at {folder}"
    check_made_for(meta.get("made_for"), target, what, uses_hidden_states=True, allow_other_target=allow_other_target)
    if int(meta["hidden"]) != int(target["hidden_size"]):
        raise TargetMismatchError(f"{what} was trained for hidden size {meta['hidden']} (its head.json); the target {describe(target)} has "
                                  f"hidden size {target['hidden_size']} (train a head on this target)")
    try:
        with safe_open(str(folder / "head.safetensors"), framework="pt") as f:
            vocab = f.get_tensor("vocab")
    except Exception as exc:
        raise RecordError(f"{folder / 'head.safetensors'}: cannot read its vocabulary ({exc})") from None
    lo, hi = int(vocab.min()), int(vocab.max())
    if lo < 0:
        raise RecordError(f"{folder / 'head.safetensors'}: vocab holds token id {lo}; token ids are >= 0")
    if hi >= int(target["vocab_size"]):
        raise TargetMismatchError(f"{what} proposes token ids up to {hi}; the target {describe(target)} has "
                                  f"{target['vocab_size']} tokens (ids 0 to {int(target['vocab_size']) - 1}): it was made "
                                  f"for another target")


def load_head(folder: str | os.PathLike, target: Mapping[str, Any] | None = None, allow_other_target: bool = False) -> Any:
    """The head saved in ``folder`` (safetensors only: nothing pickled is loaded), its files checked
    (``read_head_record``) and, given ``target`` (a ``decoding.artifacts.target_identity``), checked
    against it (``check_head_target``) before any module is built."""
    from safetensors.torch import load_file

    from logging_data.records import RecordError

    folder = Path(folder)
    meta = read_head_record(folder)
    if target is not None:
        check_head_target(folder, meta, target, allow_other_target)
    weights = folder / "head.safetensors"
    try:
        state = load_file(str(weights))
    except Exception as exc:  # SafetensorError: a file whose header passed but whose data does not
        raise RecordError(f"{weights}: cannot read its tensors ({exc})") from None
    if int(state["vocab"].min()) < 0:
        raise RecordError(f"{weights}: vocab holds token id {int(state['vocab'].min())}; token ids are >= 0")
    head = feature_head(int(meta["hidden"]), state["vocab"].tolist(), int(meta["n_blocks"]), int(meta["expansion"]))
    head.load_state_dict(state)
    return head.eval()


# -- drafting -------------------------------------------------------------------------------------
class HeadDraft:
    """The ``decoding.specloop`` drafter of a head: ``k`` tokens per round from the target's hidden
    state of the last token it chose (``accepted(context, hidden)``); none before the first round.
    ``confidence`` > 0: a round stops drafting at the first token whose probability under the head
    (softmax over its vocabulary) is below it, as transformers' ``assistant_confidence_threshold``
    does for a draft model; the step that found it counts as a draft call."""

    needs_hidden = True

    def __init__(self, head: Any, model: Any, k: int, confidence: float = 0.0) -> None:
        if k < 1:
            raise ValueError(f"a head drafts k >= 1 tokens per round; got {k}")
        if not 0.0 <= confidence < 1.0:
            raise ValueError(f"a head's confidence threshold must be in [0, 1); got {confidence}")
        torch = _torch()
        self.head, self.k, self.confidence = head, int(k), float(confidence)
        embed, out_w = embedding_and_output(model)
        self.embed = embed
        self.w_sub = out_w.detach()[head.vocab.to(out_w.device)].to(torch.float32)
        self.vocab = head.vocab.to(out_w.device)
        self.draft_calls = 0
        self._h: Any = None

    def reset(self, prompt: Sequence[int]) -> None:
        self._h, self.draft_calls = None, 0

    def propose(self, context: Sequence[int]) -> list[int]:
        """Up to ``k`` tokens. Each drafted token stays on the device and is fed back in there: an
        ungated round waits for the device once (its ``tolist``), a gated one once per token (the
        probability it checks), where one ``int()`` per token would wait twice per token."""
        torch = _torch()
        if self._h is None:
            return []
        h = self._h.float().unsqueeze(0)
        token = torch.tensor([int(context[-1])], device=self.w_sub.device)
        picked = []
        with torch.no_grad():
            for _ in range(self.k):
                h = self.head(h, self.embed(token).float())
                logits = (h @ self.w_sub.T)[0]
                best = logits.argmax()
                self.draft_calls += 1
                if self.confidence and float(torch.softmax(logits, -1)[best]) < self.confidence:
                    break
                token = self.vocab[best].unsqueeze(0)
                picked.append(token)
        return torch.cat(picked).tolist() if picked else []

    def accepted(self, context: Sequence[int], hidden: Any = None) -> None:
        self._h = None if hidden is None else _torch().as_tensor(hidden, device=self.w_sub.device)


def replay_head(drafter: HeadDraft, states: Any, prompt: Sequence[int], greedy: Sequence[int], max_new_tokens: int,
                eos: Iterable[int] = ()) -> dict[str, int]:
    """The counts ``speculative_greedy`` gives with ``drafter``, replayed on the greedy output
    ``greedy`` of ``prompt`` and the target's hidden states ``states`` ((P + L, H): one forward over
    prompt + greedy). Same rounds, same caps, no target call made."""
    P, L = len(prompt), len(greedy)
    max_length = P + max_new_tokens
    drafter.reset(prompt)
    context = list(prompt)
    i = calls = proposed = 0
    while i < L:
        current = P + i
        cand = [] if max_length == current + 1 else drafter.propose(context)
        run = 0
        while run < len(cand) and i + run < L and cand[run] == greedy[i + run]:
            run += 1
        run = min(run, max(max_length - current - 1, 0))
        calls += 1
        proposed += len(cand)
        context.extend(greedy[i:i + run + 1])
        i += run + 1
        drafter.accepted(context, states[len(context) - 2])  # the state that chose the last token
    return {"n_new_tokens": L, "target_calls": calls, "draft_tokens": proposed, "draft_calls": int(drafter.draft_calls),
            "accepted_tokens": L - calls}


def draft_chains(head: Any, model: Any, states: Any, sequence: Sequence[int], start: int, k: int,
                 batch_size: int = 8192, with_confidence: bool = False) -> Any:
    """What ``HeadDraft`` proposes from each position ``p >= start`` of ``sequence``: row ``p - start``
    is the ``k`` tokens drafted from the target's state ``states[p]`` and the token ``sequence[p + 1]``,
    each fed back in; all positions at once (``k`` batched passes), for ``replay_chains``.
    ``with_confidence``: also each drafted token's probability under the head, (tokens, confidence)."""
    n = len(sequence) - 1 - start
    if n <= 0:
        empty = np.zeros((0, k), dtype=np.int64)
        return (empty, empty.astype(np.float32)) if with_confidence else empty
    tokens, conf = _chains(head, model, np.asarray(states[start:start + n]), np.asarray(sequence[start + 1:start + 1 + n]), k, batch_size)
    return (tokens, conf) if with_confidence else tokens


def _chains(head: Any, model: Any, states: np.ndarray, tokens: np.ndarray, k: int, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Row r: the ``k`` tokens drafted from ``states[r]`` and ``tokens[r]``, each fed back in, and
    each one's probability under the head (softmax over its vocabulary)."""
    torch = _torch()
    embed, out_w = embedding_and_output(model)
    w_sub = out_w.detach()[head.vocab].float()
    h_all = torch.as_tensor(np.asarray(states), dtype=torch.float32)
    tok_all = torch.as_tensor(np.asarray(tokens), dtype=torch.long)
    chains = np.zeros((len(h_all), k), dtype=np.int64)
    conf = np.zeros((len(h_all), k), dtype=np.float32)
    with torch.no_grad():
        for b in range(0, len(h_all), batch_size):
            h, tok = h_all[b:b + batch_size], tok_all[b:b + batch_size]
            for j in range(k):
                h = head(h, embed(tok).float())
                p, best = torch.softmax(h @ w_sub.T, -1).max(-1)
                tok = head.vocab[best]
                chains[b:b + len(h), j] = tok.numpy()
                conf[b:b + len(h), j] = p.numpy()
    return chains, conf


def replay_chains(chains: np.ndarray, prompt: Sequence[int], greedy: Sequence[int], max_new_tokens: int, k: int,
                  confidence: np.ndarray | None = None, threshold: float = 0.0) -> dict[str, int]:
    """``replay_head``'s counts from ``draft_chains(..., start=len(prompt) - 1, k)``: the rounds of the
    loop walked on the greedy output (``alignment.replay_rounds``), each round's candidates read from
    the chain of its position. ``confidence`` (``draft_chains(..., with_confidence=True)``) and
    ``threshold``: ``HeadDraft``'s ``confidence`` gate, each chain cut before its first token below it."""
    return _replay_with_chains(chains, prompt, greedy, max_new_tokens, k, lambda context: [], confidence, threshold)


def replay_lookup_chains(chains: np.ndarray, prompt: Sequence[int], greedy: Sequence[int], max_new_tokens: int, k: int,
                         lookup_k: int, ngram: int = 2, eos: Iterable[int] = (), confidence: np.ndarray | None = None,
                         threshold: float = 0.0) -> dict[str, int]:
    """``replay_chains`` for the ``lookup_head`` arm kind (``decoding.arms.lookup_head``): each round
    proposes prompt lookup's candidates (``lookup_k`` tokens, n-grams up to ``ngram``) where it finds
    a match in the context, else the head's chain of that position; same rounds and caps as the loop."""
    from .alignment import prompt_lookup_candidates

    eos = frozenset(eos)
    return _replay_with_chains(chains, prompt, greedy, max_new_tokens, k,
                               lambda context: prompt_lookup_candidates(context, lookup_k, ngram, eos), confidence, threshold)


def replay_first_chains(first: Any, chains: np.ndarray, prompt: Sequence[int], greedy: Sequence[int], max_new_tokens: int, k: int,
                        confidence: np.ndarray | None = None, threshold: float = 0.0) -> dict[str, int]:
    """``replay_chains`` for a drafter that proposes ``first(context)`` where that has candidates, else
    the head's chain of that position (kind ``datastore_head``: a store's lookup; ``replay_lookup_chains``:
    prompt lookup); same rounds and caps as the loop. ``first``'s own calls are not draft calls."""
    return _replay_with_chains(chains, prompt, greedy, max_new_tokens, k, first, confidence, threshold)


def _replay_with_chains(chains: np.ndarray, prompt: Sequence[int], greedy: Sequence[int], max_new_tokens: int, k: int,
                        first: Any, confidence: np.ndarray | None = None, threshold: float = 0.0) -> dict[str, int]:
    """Counts of rounds that propose ``first(context)`` when it is not empty, else the head's chain
    drafted from the state that chose the last token (none before the first round), cut before its
    first token whose ``confidence`` is below ``threshold`` (that step still counts as a draft call)."""
    from .alignment import replay_rounds

    if threshold and confidence is None:
        raise ValueError("replaying a confidence gate needs the chains' confidence (draft_chains(..., with_confidence=True))")
    P, L = len(prompt), len(greedy)
    draft_calls = 0

    def propose(context: list[int]) -> Sequence[int]:
        nonlocal draft_calls
        candidates = first(context)
        i = len(context) - P
        if candidates or i == 0:
            return candidates
        row = chains[i - 1, :k]  # drafted from the state that chose greedy[i - 1]
        if not threshold:
            draft_calls += k
            return row.tolist()
        low = np.flatnonzero(confidence[i - 1, :k] < threshold)
        n = int(low[0]) if len(low) else k
        draft_calls += min(n + 1, k)
        return row[:n].tolist()

    v = replay_rounds(list(prompt), list(greedy), max_new_tokens, propose)
    return {"n_new_tokens": L, "target_calls": v.target_calls, "draft_tokens": v.proposed, "draft_calls": draft_calls,
            "accepted_tokens": L - v.target_calls}


def draft_chains_many(head: Any, model: Any, items: Sequence[tuple[Any, Sequence[int], int]], k: int,
                      batch_size: int = 8192, with_confidence: bool = False) -> list[Any]:
    """``draft_chains`` of many ``(states, sequence, start)`` at once (one batch over all positions)."""
    sizes = [max(len(seq) - 1 - start, 0) for _, seq, start in items]
    if not sum(sizes):
        empty = np.zeros((0, k), dtype=np.int64)
        return [(empty, empty.astype(np.float32)) if with_confidence else empty for _ in items]
    states = np.concatenate([np.asarray(st[start:start + n]) for (st, _, start), n in zip(items, sizes) if n])
    tokens = np.concatenate([np.asarray(seq[start + 1:start + 1 + n]) for (_, seq, start), n in zip(items, sizes) if n])
    flat, conf = _chains(head, model, states, tokens, k, batch_size)
    out, at = [], 0
    for n in sizes:
        out.append((flat[at:at + n], conf[at:at + n]) if with_confidence else flat[at:at + n])
        at += n
    return out

