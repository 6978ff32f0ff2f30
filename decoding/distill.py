"""Distil a small task-aligned draft from a target model, on one domain's prompts.

The draft is a causal LM of the target's own architecture family (a ``LlamaConfig`` for
SmolLM2), sharing the target's tokenizer and vocabulary so that plain assisted decoding applies.
It is trained to match the target's next-token distributions on the sequences assisted decoding
will see: the domain's train-split prompts (through the chat template, exactly as the decoding
backend encodes them) followed by the target's own greedy continuation of each.

Pipeline (``distill_draft``), all inside one output folder ``OUT``::

    OUT/teacher/shard-*.safetensors   the target's greedy continuations and its top-k next-token
                                      log-probabilities at every position (computed once; a
                                      restart reuses the shards already written)
    OUT/checkpoint/                   draft weights, AdamW state, the sampling generator and the
                                      step (safetensors + JSON; written atomically every
                                      ``checkpoint_every`` steps; a rerun resumes from it)
    OUT/config.json, model.safetensors, generation_config.json, tokenizer files
                                      the finished draft: a standard Hugging Face folder that
                                      ``AutoModelForCausalLM.from_pretrained(OUT)`` loads with
                                      nothing of this package
    OUT/distill.json                  training metadata: domain, target, sizes, steps, seconds,
                                      losses, seed

The loss is KL(target || draft) on a coarsened vocabulary: the target's top-k tokens at each
position plus one bucket for the rest of the vocabulary. With ``top_k`` of a few dozen this keeps
almost all of the target's probability mass and makes the cached teacher small (k log-probs and
k token ids per position instead of the whole 49,152-way distribution).

Draft sizes. On a CPU a draft pays only when one draft forward costs well under a fifth of a
target forward. For SmolLM2-135M (30 layers, hidden 576, vocab 49,152, tied embeddings) the
tied output matrix alone is ~28M MACs per token, so a 1-layer draft at the target's width still
costs ~23% of a target step on 2 cores; at width 256 a 2-layer draft costs ~12% (measured per
call with a KV cache; see BENCHMARKS.md, "Task-aligned drafts"). The default is therefore 2 layers at width
256 whose embeddings start from the target's, projected onto their top 256 principal directions
(and stay trainable); at the target's width the embeddings and the nearest target layers are
copied exactly.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from logging_data.files import atomic_write, write_text_atomic
from logging_data.outputs import DRAFT, check_output, publish

from .models import DRAFT_MAX_NEW_TOKENS

TEACHER_DIR = "teacher"
CHECKPOINT_DIR = "checkpoint"
METADATA_FILE = "distill.json"
_ARCH_FIELDS = ("num_hidden_layers", "hidden_size", "intermediate_size", "num_attention_heads", "num_key_value_heads")


@dataclass(frozen=True)
class DraftArchitecture:
    """The draft's size. ``None`` takes the target's value (hidden size, intermediate size, heads)."""

    n_layers: int = 2  # transformer blocks; 1-2 keep a draft step far below a target step
    hidden_size: int | None = 256  # width; None = the target's (then embeddings are copied exactly)
    intermediate_size: int | None = 768  # MLP width; None = the target's when the width is the target's, else 3 x hidden
    n_heads: int | None = 4  # attention heads; None = hidden_size / the target's head_dim
    n_kv_heads: int | None = 2  # key/value heads (grouped-query attention); None = the target's at its head count, else n_heads
    reuse_embeddings: bool = True  # start from the target's embeddings (projected when narrower)
    freeze_embeddings: bool = False  # keep the (tied) embeddings fixed while training

    def validate(self) -> None:
        if not isinstance(self.n_layers, int) or self.n_layers < 1:
            raise ValueError(f"`n_layers` must be an integer >= 1; got {self.n_layers!r}")
        for name in ("hidden_size", "intermediate_size", "n_heads", "n_kv_heads"):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, int) or v < 1):
                raise ValueError(f"`{name}` must be a positive integer or None; got {v!r}")
        if self.freeze_embeddings and not self.reuse_embeddings:
            raise ValueError("`freeze_embeddings` needs `reuse_embeddings`: freezing random embeddings trains nothing useful")


@dataclass(frozen=True)
class DistillConfig:
    """How to train. Every field is recorded in ``distill.json``; a resumed run must match."""

    domain: str  # the prompts' ``domain`` value to train on
    split: str | None = "train"  # the prompts' ``split`` to train on; None = every row of the domain
    max_prompts: int | None = 128  # at most this many prompts (a seeded sample); None = all
    max_new_tokens: int = DRAFT_MAX_NEW_TOKENS  # length of the target's greedy continuation of each prompt
    max_prompt_tokens: int = 512  # prompts longer than this (after the chat template) are skipped
    top_k: int = 64  # target log-probs kept per position
    steps: int = 150  # optimiser steps
    batch_size: int = 8  # sequences per step
    lr: float = 2e-3  # peak AdamW learning rate (linear warm-up over 5% of the steps, cosine decay)
    weight_decay: float = 0.0
    prompt_weight: float = 0.5  # loss weight of prompt positions relative to continuation positions
    gen_batch_size: int = 8  # prompts per batched greedy generation of the teacher
    checkpoint_every: int = 40  # steps between checkpoints
    seed: int = 0

    def validate(self) -> None:
        if not isinstance(self.domain, str) or not self.domain:
            raise ValueError(f"`domain` must be a non-empty string; got {self.domain!r}")
        positive = ("max_new_tokens", "max_prompt_tokens", "top_k", "steps", "batch_size", "gen_batch_size", "checkpoint_every")
        for name in positive:
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"`{name}` must be an integer >= 1; got {v!r}")
        if self.max_prompts is not None and (not isinstance(self.max_prompts, int) or self.max_prompts < 1):
            raise ValueError(f"`max_prompts` must be an integer >= 1 or None; got {self.max_prompts!r}")
        if not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"`lr` must be a finite number > 0; got {self.lr!r}")
        if not (math.isfinite(self.weight_decay) and self.weight_decay >= 0):
            raise ValueError(f"`weight_decay` must be >= 0; got {self.weight_decay!r}")
        if not (math.isfinite(self.prompt_weight) and self.prompt_weight >= 0):
            raise ValueError(f"`prompt_weight` must be >= 0; got {self.prompt_weight!r}")

    # fields a resumed run may change without invalidating the cache or the checkpoint
    RESUMABLE_CHANGES = ("steps", "checkpoint_every")


@dataclass
class DistillResult:
    """What ``distill_draft`` did: the folder, the metadata written to ``distill.json``."""

    out_dir: Path
    metadata: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------
# prompts and their encoding


def read_domain_prompts(path: str | os.PathLike, domain: str, split: str | None = "train", columns: Any = None,
                        fmt: str | None = None) -> list[str]:
    """The prompt texts of ``domain`` (and ``split``) from a prompts file, in file order.

    Any format ``logging_data.prompt_table`` reads, with ``columns`` naming its columns (a
    ``PromptColumns``). The file needs prompt and domain columns; splits are made (seeded
    60/20/20) when it has none.
    """
    from logging_data.prompt_table import PromptColumns, read_prompt_table

    p = Path(path)
    frame = read_prompt_table(p, columns=columns or PromptColumns(), fmt=fmt, make_splits=True)
    need = ["prompt", "domain"] + (["split"] if split is not None else [])
    missing = [c for c in need if c not in frame.columns]
    if missing:
        raise ValueError(f"{p}: prompts need column(s) {', '.join(missing)}; found {', '.join(map(str, frame.columns))}")
    mask = frame["domain"].astype("string") == domain
    if split is not None:
        mask &= frame["split"].astype("string") == split
    mask = mask.fillna(False).to_numpy(dtype=bool)
    if not mask.any():
        domains = sorted(frame["domain"].dropna().astype(str).unique())
        where = f" and split {split!r}" if split is not None else ""
        raise ValueError(f"{p}: no prompt has domain {domain!r}{where}; domains present: {', '.join(domains) or 'none'}")
    texts = frame.loc[mask, "prompt"].astype(str).tolist()
    empty = sum(1 for t in texts if not t.strip())
    if empty:
        raise ValueError(f"{p}: {empty} prompt(s) of domain {domain!r} are empty")
    return texts


def encode_prompt(tokenizer: Any, prompt: str) -> list[int]:
    """Token ids the target sees for ``prompt``, exactly as ``decoding.session.DecodingSession``
    encodes them with ``chat_template = "auto"``: the chat template's text (with the generation
    prompt) tokenized without extra special tokens when the tokenizer has a template, else the
    plain encoding. Distillation must train on the sequences assisted decoding will see."""
    from .loading import prompt_ids

    return prompt_ids(tokenizer, prompt, chat_template=True)


def sample_prompts(texts: Sequence[str], max_prompts: int | None, seed: int) -> list[str]:
    """At most ``max_prompts`` of ``texts``, a seeded sample kept in file order."""
    if max_prompts is None or len(texts) <= max_prompts:
        return list(texts)
    rng = np.random.default_rng(seed)
    keep = np.sort(rng.choice(len(texts), size=max_prompts, replace=False))
    return [texts[i] for i in keep]


# ---------------------------------------------------------------------------------------------
# the teacher: greedy continuations and top-k log-probs, cached as safetensors shards


@dataclass
class TeacherData:
    """The cached teacher, all sequences concatenated.

    ``ids``: int64 (n_tokens,) every sequence's prompt + continuation tokens, back to back;
    ``offsets``: int64 (n_seqs + 1,) where each sequence starts in ``ids``;
    ``prompt_lens``: int64 (n_seqs,) prompt tokens at the start of each sequence;
    ``topk_ids``: int64 (n_tokens, k) the target's top-k next-token ids after each token
    (the last token of a sequence has a row too; it is never trained on);
    ``topk_logp``: float32 (n_tokens, k) their log-probabilities under the target.
    """

    ids: Any
    offsets: Any
    prompt_lens: Any
    topk_ids: Any
    topk_logp: Any

    @property
    def n_seqs(self) -> int:
        return int(self.offsets.shape[0] - 1)


def _pad_id(tokenizer: Any, model: Any) -> int:
    for cand in (getattr(tokenizer, "pad_token_id", None), getattr(model.generation_config, "pad_token_id", None),
                 getattr(tokenizer, "eos_token_id", None)):
        if isinstance(cand, int):
            return cand
    return 0


def _eos_ids(tokenizer: Any, model: Any) -> set[int]:
    eos = model.generation_config.eos_token_id
    if eos is None:
        eos = tokenizer.eos_token_id
    if eos is None:
        return set()
    return {int(e) for e in (eos if isinstance(eos, (list, tuple)) else [eos])}


def _greedy_batch(model: Any, prompts: list[list[int]], max_new_tokens: int, pad_id: int, eos: set[int]) -> list[list[int]]:
    """Greedy continuations of a batch of encoded prompts (left-padded), cut after the first EOS."""
    import torch

    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for i, p in enumerate(prompts):
        ids[i, width - len(p):] = torch.tensor(p, dtype=torch.long)
        mask[i, width - len(p):] = 1
    with torch.no_grad():
        out = model.generate(input_ids=ids, attention_mask=mask, do_sample=False, max_new_tokens=max_new_tokens,
                             min_new_tokens=0, pad_token_id=pad_id, num_beams=1, temperature=None, top_p=None, top_k=None)
    conts = []
    for row in out[:, width:].tolist():
        cut = []
        for t in row:
            cut.append(int(t))
            if int(t) in eos:
                break
        conts.append(cut)
    return conts


def _teacher_topk(model: Any, seqs: list[list[int]], k: int, pad_id: int) -> list[tuple[Any, Any]]:
    """The target's top-k next-token log-probs at every position of each (right-padded) sequence."""
    import torch

    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = torch.tensor(s, dtype=torch.long)
        mask[i, : len(s)] = 1
    with torch.no_grad():
        logits = model(input_ids=ids, attention_mask=mask).logits.float()
        logp = torch.log_softmax(logits, dim=-1)
        vals, idx = torch.topk(logp, k, dim=-1)
    return [(idx[i, : len(s)].clone(), vals[i, : len(s)].clone()) for i, s in enumerate(seqs)]


def _write_json(path: Path, obj: Any) -> None:
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n")


def _save_tensors_atomic(tensors: dict[str, Any], path: Path, metadata: dict[str, str] | None = None) -> None:
    from safetensors.torch import save_file

    atomic_write(path, lambda tmp: save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp), metadata=metadata))


def build_teacher(model: Any, tokenizer: Any, prompts: Sequence[str], folder: str | os.PathLike, *,
                  max_new_tokens: int, top_k: int, gen_batch_size: int = 8, max_prompt_tokens: int = 512,
                  fingerprint: str = "", progress: bool = True) -> TeacherData:
    """Generate (once) and load the teacher data for ``prompts`` under ``folder``.

    Prompts are processed in batches of ``gen_batch_size``; each batch becomes one shard file
    ``shard-NNNNN.safetensors``, written atomically, so an interrupted run resumes at the first
    missing shard. ``fingerprint`` (target, prompts, lengths, k) is stored in every shard; a shard
    made under another fingerprint is an error rather than silently mixed in.
    """
    import torch
    from safetensors import safe_open
    from tqdm.auto import tqdm

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    encoded = [encode_prompt(tokenizer, p) for p in prompts]
    keep = [i for i, e in enumerate(encoded) if 0 < len(e) <= max_prompt_tokens]
    if not keep:
        raise ValueError(f"every prompt is longer than max_prompt_tokens={max_prompt_tokens} tokens after the chat template")
    encoded = [encoded[i] for i in keep]
    pad_id, eos = _pad_id(tokenizer, model), _eos_ids(tokenizer, model)
    batches = [list(range(s, min(s + gen_batch_size, len(encoded)))) for s in range(0, len(encoded), gen_batch_size)]
    was_training = model.training
    model.eval()
    bar = tqdm(total=len(encoded), desc="teacher", unit="prompt", disable=not progress)
    try:
        for b, rows in enumerate(batches):
            shard = folder / f"shard-{b:05d}.safetensors"
            if shard.exists():
                with safe_open(str(shard), framework="pt") as fh:
                    found = (fh.metadata() or {}).get("fingerprint", "")
                if found != fingerprint:
                    raise ValueError(f"{shard} was made for other settings (fingerprint {found[:12]!r}, expected "
                                     f"{fingerprint[:12]!r}); delete {folder} or choose another output folder")
                bar.update(len(rows))
                continue
            t0 = time.perf_counter()
            conts = _greedy_batch(model, [encoded[i] for i in rows], max_new_tokens, pad_id, eos)
            seqs = [encoded[i] + c for i, c in zip(rows, conts)]
            tops = _teacher_topk(model, seqs, top_k, pad_id)
            lens = torch.tensor([len(s) for s in seqs], dtype=torch.long)
            tensors = {
                "ids": torch.tensor([t for s in seqs for t in s], dtype=torch.long),
                "lens": lens,
                "prompt_lens": torch.tensor([len(encoded[i]) for i in rows], dtype=torch.long),
                "topk_ids": torch.cat([t[0] for t in tops]).to(torch.int32),
                "topk_logp": torch.cat([t[1] for t in tops]).to(torch.float32),
            }
            _save_tensors_atomic(tensors, shard, {"fingerprint": fingerprint, "seconds": f"{time.perf_counter() - t0:.3f}"})
            bar.update(len(rows))
    finally:
        bar.close()
        model.train(was_training)
    return load_teacher(folder, n_shards=len(batches))


def teacher_seconds(folder: str | os.PathLike) -> float:
    """Seconds the target spent generating the cached teacher under ``folder`` (summed over shards
    that recorded it), whichever run made them."""
    from safetensors import safe_open

    total = 0.0
    for shard in sorted(Path(folder).glob("shard-*.safetensors")):
        with safe_open(str(shard), framework="pt") as fh:
            total += float((fh.metadata() or {}).get("seconds", 0.0))
    return total


def load_teacher(folder: str | os.PathLike, n_shards: int | None = None) -> TeacherData:
    """Concatenate the teacher shards under ``folder`` (the first ``n_shards`` when given)."""
    import torch
    from safetensors.torch import load_file

    folder = Path(folder)
    shards = sorted(folder.glob("shard-*.safetensors"))
    if n_shards is not None:
        shards = shards[:n_shards]
    if not shards:
        raise FileNotFoundError(f"{folder}: no teacher shards")
    parts = [load_file(str(s)) for s in shards]
    lens = torch.cat([p["lens"] for p in parts])
    offsets = torch.zeros(len(lens) + 1, dtype=torch.long)
    offsets[1:] = torch.cumsum(lens, 0)
    return TeacherData(
        ids=torch.cat([p["ids"] for p in parts]),
        offsets=offsets,
        prompt_lens=torch.cat([p["prompt_lens"] for p in parts]),
        topk_ids=torch.cat([p["topk_ids"] for p in parts]).long(),
        topk_logp=torch.cat([p["topk_logp"] for p in parts]),
    )


# ---------------------------------------------------------------------------------------------
# the draft model


def draft_config(target_config: Any, arch: DraftArchitecture) -> Any:
    """The draft's transformers config: the target's config class and settings, resized."""
    arch.validate()
    missing = [f for f in _ARCH_FIELDS if not hasattr(target_config, f)]
    if missing:
        raise ValueError(f"target model type {getattr(target_config, 'model_type', '?')!r} has no {', '.join(missing)} in its "
                         "config; distillation supports Llama-like decoder configs (llama, mistral, qwen2, ...)")
    t_hidden = int(target_config.hidden_size)
    t_head_dim = int(getattr(target_config, "head_dim", None) or t_hidden // int(target_config.num_attention_heads))
    hidden = arch.hidden_size or t_hidden
    n_heads = arch.n_heads or max(1, hidden // t_head_dim)
    if hidden % n_heads:
        raise ValueError(f"`hidden_size` {hidden} must be divisible by `n_heads` {n_heads}")
    t_heads, t_kv = int(target_config.num_attention_heads), int(target_config.num_key_value_heads or target_config.num_attention_heads)
    n_kv = arch.n_kv_heads or (t_kv if n_heads == t_heads else n_heads)
    if n_heads % n_kv:
        raise ValueError(f"`n_heads` {n_heads} must be divisible by `n_kv_heads` {n_kv}")
    if arch.intermediate_size is not None:
        inter = arch.intermediate_size
    else:
        inter = int(target_config.intermediate_size) if hidden == t_hidden else 3 * hidden
    d = target_config.to_dict()
    for key in ("architectures", "transformers_version", "_name_or_path", "quantization_config", "dtype", "torch_dtype"):
        d.pop(key, None)
    d.update(num_hidden_layers=arch.n_layers, hidden_size=hidden, intermediate_size=inter, num_attention_heads=n_heads,
             num_key_value_heads=n_kv, head_dim=hidden // n_heads, tie_word_embeddings=True)
    for key in ("layer_types", "max_window_layers"):  # per-layer lists sized for the target
        if isinstance(d.get(key), list):
            d[key] = d[key][: arch.n_layers]
    cfg = type(target_config)(**{k: v for k, v in d.items() if k != "model_type"})
    return cfg


def init_draft(target: Any, arch: DraftArchitecture, seed: int = 0) -> Any:
    """A new draft for ``target``: random blocks (seeded), embeddings taken from the target.

    At the target's width the embeddings, the final norm and evenly spaced target blocks are
    copied exactly; when narrower, the embeddings are the target's projected on their top
    principal directions (an orthonormal projection, so logits keep their geometry).
    """
    import torch
    from transformers import AutoModelForCausalLM

    cfg = draft_config(target.config, arch)
    with torch.random.fork_rng(devices=[]):  # model init uses the global RNG; fork it, never change it
        torch.manual_seed(seed)
        draft = AutoModelForCausalLM.from_config(cfg, dtype=torch.float32)
    draft.generation_config = type(target.generation_config).from_dict(target.generation_config.to_dict())
    t_emb = target.get_input_embeddings().weight.detach().float()
    same_width = cfg.hidden_size == t_emb.shape[1]
    with torch.no_grad():
        if arch.reuse_embeddings:
            if same_width:
                draft.get_input_embeddings().weight.copy_(t_emb)
            else:
                _, _, vt = torch.linalg.svd(t_emb - t_emb.mean(0), full_matrices=False)
                draft.get_input_embeddings().weight.copy_(t_emb @ vt[: cfg.hidden_size].T)
        if same_width and _same_block_shapes(target.config, cfg):
            t_layers = target.model.layers
            picks = np.linspace(0, len(t_layers) - 1, num=cfg.num_hidden_layers).round().astype(int)
            for d_layer, i in zip(draft.model.layers, picks):
                d_layer.load_state_dict(t_layers[int(i)].state_dict())
            draft.model.norm.load_state_dict(target.model.norm.state_dict())
    draft.tie_weights()
    if arch.freeze_embeddings:
        draft.get_input_embeddings().weight.requires_grad_(False)
    return draft


def _same_block_shapes(a: Any, b: Any) -> bool:
    keys = ("hidden_size", "intermediate_size", "num_attention_heads", "num_key_value_heads")
    return all(getattr(a, k) == getattr(b, k) for k in keys) and getattr(a, "head_dim", None) == getattr(b, "head_dim", None)


# ---------------------------------------------------------------------------------------------
# the loss


def coarse_kl(draft_logits: Any, topk_ids: Any, topk_logp: Any) -> Any:
    """KL(target || draft) over the target's top-k tokens plus one "rest of the vocabulary" bucket.

    ``draft_logits``: float (n, V); ``topk_ids``: int64 (n, k); ``topk_logp``: float (n, k) the
    target's log-probs of those ids. Returns float (n,), one KL per position (>= 0 up to rounding).
    """
    import torch

    logq_all = torch.log_softmax(draft_logits.float(), dim=-1)
    logq = logq_all.gather(-1, topk_ids)
    p = topk_logp.exp()
    p_rest = (1.0 - p.sum(-1)).clamp_min(0.0)
    q_rest = (1.0 - logq.exp().sum(-1)).clamp_min(1e-12)
    kl_top = (p * (topk_logp - logq)).sum(-1)
    kl_rest = torch.where(p_rest > 1e-9, p_rest * (torch.log(p_rest.clamp_min(1e-12)) - torch.log(q_rest)),
                          torch.zeros_like(p_rest))
    return kl_top + kl_rest


def _batch(teacher: TeacherData, rows: Any, pad_id: int, prompt_weight: float) -> tuple[Any, Any, Any, Any, Any]:
    """Right-padded inputs, attention mask, per-position weights and teacher targets for ``rows``."""
    import torch

    starts = teacher.offsets[rows]
    ends = teacher.offsets[rows + 1]
    width = int((ends - starts).max())
    n, k = len(rows), teacher.topk_ids.shape[1]
    ids = torch.full((n, width), pad_id, dtype=torch.long)
    mask = torch.zeros((n, width), dtype=torch.long)
    weight = torch.zeros((n, width), dtype=torch.float32)
    t_ids = torch.zeros((n, width, k), dtype=torch.long)
    t_logp = torch.zeros((n, width, k), dtype=torch.float32)
    for j, (s, e, r) in enumerate(zip(starts.tolist(), ends.tolist(), rows.tolist())):
        L = e - s
        ids[j, :L] = teacher.ids[s:e]
        mask[j, :L] = 1
        pl = int(teacher.prompt_lens[r])
        # position t predicts token t+1; the last position has no next token to train on
        weight[j, : max(pl - 1, 0)] = prompt_weight
        weight[j, max(pl - 1, 0): L - 1] = 1.0
        t_ids[j, :L] = teacher.topk_ids[s:e]
        t_logp[j, :L] = teacher.topk_logp[s:e]
    return ids, mask, weight, t_ids, t_logp


def distill_loss(draft: Any, teacher: TeacherData, rows: Any, pad_id: int, prompt_weight: float) -> Any:
    """Weighted mean coarse KL of ``draft`` against the teacher on sequences ``rows`` (int64 (b,))."""
    ids, mask, weight, t_ids, t_logp = _batch(teacher, rows, pad_id, prompt_weight)
    logits = draft(input_ids=ids, attention_mask=mask).logits
    sel = weight > 0
    kl = coarse_kl(logits[sel], t_ids[sel], t_logp[sel])
    w = weight[sel]
    return (kl * w).sum() / w.sum().clamp_min(1e-12)


# ---------------------------------------------------------------------------------------------
# checkpoints: safetensors + JSON, never pickles


def _save_checkpoint(folder: Path, draft: Any, optimizer: Any, generator: Any, state: dict[str, Any]) -> None:
    """Write draft weights, AdamW moments, the sampling generator and ``state`` atomically."""
    tmp = folder.with_name(f".{folder.name}.{uuid.uuid4().hex}.tmp")
    tmp.mkdir(parents=True)
    try:
        params = dict(draft.named_parameters())  # tied weights appear once
        _save_tensors_atomic({k: v.detach() for k, v in params.items()}, tmp / "model.safetensors")
        opt = {}
        name_of = {id(p): n for n, p in params.items()}
        for group in optimizer.param_groups:
            for p in group["params"]:
                st = optimizer.state.get(p)
                if not st:
                    continue
                n = name_of[id(p)]
                for key, val in st.items():
                    opt[f"{n}::{key}"] = val.detach().reshape(-1) if key == "step" else val.detach()
        opt["__generator__"] = generator.get_state()
        _save_tensors_atomic(opt, tmp / "optimizer.safetensors")
        (tmp / "state.json").write_text(json.dumps(state, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        old = folder.with_name(f".{folder.name}.{uuid.uuid4().hex}.old")
        if folder.exists():
            os.replace(folder, old)
        os.replace(tmp, folder)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _load_checkpoint(folder: Path, draft: Any, optimizer: Any, generator: Any) -> dict[str, Any]:
    import torch
    from safetensors.torch import load_file

    state = json.loads((folder / "state.json").read_text(encoding="utf-8"))
    weights = load_file(str(folder / "model.safetensors"))
    params = dict(draft.named_parameters())
    if set(weights) != set(params):
        raise ValueError(f"{folder}: checkpoint weights {sorted(set(weights) ^ set(params))[:3]} do not match the draft's")
    with torch.no_grad():
        for n, p in params.items():
            p.copy_(weights[n])
    opt = load_file(str(folder / "optimizer.safetensors"))
    generator.set_state(opt.pop("__generator__"))
    for group in optimizer.param_groups:
        for p in group["params"]:
            n = next(k for k, v in params.items() if v is p)
            entries = {key.split("::", 1)[1]: v for key, v in opt.items() if key.split("::", 1)[0] == n}
            if entries:
                if "step" in entries:
                    entries["step"] = entries["step"].reshape(())
                optimizer.state[p] = entries
    return state


# ---------------------------------------------------------------------------------------------
# the whole run


def _lr_at(step: int, total: int, peak: float) -> float:
    warm = max(1, int(0.05 * total))
    if step < warm:
        return peak * (step + 1) / warm
    frac = (step - warm) / max(1, total - warm)
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(frac, 1.0))))


def _fingerprint(parts: dict[str, Any]) -> str:
    import hashlib

    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode("utf-8")).hexdigest()


def distill_draft(target: Any, tokenizer: Any, prompts: Sequence[str], out_dir: str | os.PathLike, *,
                  config: DistillConfig, arch: DraftArchitecture = DraftArchitecture(), target_name: str = "",
                  progress: bool = True, overwrite: bool = False) -> DistillResult:
    """Train a draft for ``target`` on ``prompts`` (one domain's) into ``out_dir``; resumable.

    ``target`` is a loaded causal LM (eval mode, fp32) and ``tokenizer`` its tokenizer; both are
    only read. ``out_dir`` is new, empty or a distilled draft, never the target, a log or a
    folder around them (``logging_data.outputs.check_output``).

    A new draft is trained in a hidden folder beside ``out_dir`` named by its settings
    (``.NAME.partial-KEY``: the teacher cache and checkpoints) and renamed into place when
    finished: a failed run leaves nothing at ``out_dir``, and running again with the same
    settings resumes it, with other settings starts apart from it. Running again onto a finished
    draft continues it in place when only ``DistillConfig.RESUMABLE_CHANGES`` differ (more steps);
    other settings are an error naming the fields, unless ``overwrite``: the new draft then
    replaces it once complete.
    """
    import torch
    from tqdm.auto import tqdm

    config.validate()
    arch.validate()
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"output {out} exists and is not a directory")
    inputs = [("the target", target_name or None)]
    check_output(out, DRAFT, inputs=inputs, if_exists="continue")
    texts = sample_prompts(list(prompts), config.max_prompts, config.seed)
    if not texts:
        raise ValueError(f"no prompts to distil on for domain {config.domain!r}")
    settings = {"config": asdict(config), "arch": asdict(arch), "target": target_name,
                "n_prompts": len(texts), "prompts_sha": _fingerprint({"p": texts})}
    work = _work_folder(out, settings, overwrite, inputs)
    work.mkdir(parents=True, exist_ok=True)
    _check_resumable(work, settings)
    _write_json(work / ".settings.json", settings)

    teacher_fp = _fingerprint({"target": target_name, "prompts": settings["prompts_sha"], "n": config.max_new_tokens,
                               "k": config.top_k, "maxp": config.max_prompt_tokens, "vocab": int(target.config.vocab_size)})
    teacher = build_teacher(target, tokenizer, texts, work / TEACHER_DIR, max_new_tokens=config.max_new_tokens,
                            top_k=config.top_k, gen_batch_size=config.gen_batch_size,
                            max_prompt_tokens=config.max_prompt_tokens, fingerprint=teacher_fp, progress=progress)
    teacher_s = teacher_seconds(work / TEACHER_DIR)

    draft = init_draft(target, arch, seed=config.seed)
    draft.train()
    trainable = [p for p in draft.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=config.lr, weight_decay=config.weight_decay)
    generator = torch.Generator().manual_seed(config.seed)
    pad_id = _pad_id(tokenizer, target)
    ckpt = work / CHECKPOINT_DIR
    state: dict[str, Any] = {"step": 0, "losses": [], "train_seconds": 0.0, "teacher_seconds": 0.0, "order": []}
    if (ckpt / "state.json").exists():
        state = _load_checkpoint(ckpt, draft, optimizer, generator)
    # shards written before per-shard timing existed record none; keep what the checkpoint knew
    state["teacher_seconds"] = max(teacher_s, float(state.get("teacher_seconds", 0.0)))
    order: list[int] = list(state.get("order", []))
    n = teacher.n_seqs
    bs = min(config.batch_size, n)
    bar = tqdm(total=config.steps, initial=min(state["step"], config.steps), desc=f"distil {config.domain}", unit="step",
               disable=not progress)
    t_train = time.perf_counter()
    train_before = float(state["train_seconds"])
    try:
        while state["step"] < config.steps:
            if len(order) < bs:  # a fresh seeded permutation per epoch
                order += torch.randperm(n, generator=generator).tolist()
            rows, order = torch.tensor(order[:bs], dtype=torch.long), order[bs:]
            for g in optimizer.param_groups:
                g["lr"] = _lr_at(state["step"], config.steps, config.lr)
            loss = distill_loss(draft, teacher, rows, pad_id, config.prompt_weight)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(trainable, 1.0)
            optimizer.step()
            state["step"] += 1
            state["losses"].append(round(float(loss.detach()), 6))
            bar.update(1)
            bar.set_postfix(kl=f"{float(loss.detach()):.3f}")
            if state["step"] % config.checkpoint_every == 0 or state["step"] == config.steps:
                state["train_seconds"] = train_before + time.perf_counter() - t_train
                state["order"] = order
                _save_checkpoint(ckpt, draft, optimizer, generator, state)
    finally:
        bar.close()
    draft.eval()
    metadata = {
        "domain": config.domain,
        "target": target_name,
        "steps": state["step"],
        "n_prompts": n,
        "n_train_tokens": int(teacher.ids.shape[0]),
        "teacher_seconds": round(float(state["teacher_seconds"]), 2),
        "train_seconds": round(float(state["train_seconds"]), 2),
        "budget_seconds": round(float(state["teacher_seconds"]) + float(state["train_seconds"]), 2),
        "n_threads": torch.get_num_threads(),
        "losses": state["losses"],
        "first_loss": state["losses"][0] if state["losses"] else None,
        "final_loss": float(np.mean(state["losses"][-10:])) if state["losses"] else None,
        "n_params": int(sum(p.numel() for p in draft.parameters())),
        "seed": config.seed,
        "config": asdict(config),
        "architecture": asdict(arch),
        "draft_config": {k: getattr(draft.config, k) for k in _ARCH_FIELDS},
    }
    save_draft(draft, tokenizer, work, metadata)
    if work != out:
        publish(work, out, replace=overwrite)
    return DistillResult(out_dir=out, metadata=metadata)


def _resume_key(settings: dict[str, Any]) -> str:
    """The settings a run can not resume across (all but ``DistillConfig.RESUMABLE_CHANGES``), hashed."""
    fixed = {**settings, "config": {k: v for k, v in settings["config"].items() if k not in DistillConfig.RESUMABLE_CHANGES}}
    return _fingerprint(fixed)[:12]


def _work_folder(out: Path, settings: dict[str, Any], overwrite: bool, inputs: list) -> Path:
    """Where this run trains: ``out`` itself when it is a draft these settings continue; else the
    hidden partial folder beside it that these settings name (resumed when it exists)."""
    if DRAFT.is_one(out):
        try:
            _check_resumable(out, settings)
            return out
        except ValueError:
            if not overwrite:
                raise
        check_output(out, DRAFT, inputs=inputs, if_exists="overwrite", overwrite=True)  # only a draft's own files
    return out.parent / f".{out.name}.partial-{_resume_key(settings)}"


def _check_resumable(out: Path, settings: dict[str, Any]) -> None:
    prev_path = out / ".settings.json"
    if not prev_path.exists():
        return
    prev = json.loads(prev_path.read_text(encoding="utf-8"))
    diffs = []
    for section in ("config", "arch"):
        for k in sorted(set(prev.get(section, {})) | set(settings[section])):
            if section == "config" and k in DistillConfig.RESUMABLE_CHANGES:
                continue
            if prev.get(section, {}).get(k) != settings[section].get(k):
                diffs.append(f"{k}: {prev.get(section, {}).get(k)!r} -> {settings[section].get(k)!r}")
    for k in ("target", "n_prompts", "prompts_sha"):
        if prev.get(k) != settings[k]:
            diffs.append(f"{k} changed")
    if diffs:
        raise ValueError(f"{out} holds a distillation run with other settings ({'; '.join(diffs[:4])}); "
                         "rerun with the same settings to resume, pass --overwrite to replace it, or choose another --out")


def save_draft(draft: Any, tokenizer: Any, out: str | os.PathLike, metadata: dict[str, Any]) -> Path:
    """Save ``draft`` as a standard Hugging Face folder (safetensors, config, generation config,
    tokenizer) plus ``distill.json``. Files are written to a temporary folder first and moved
    into ``out`` one by one, so a crash never leaves a half-written weights file."""
    out = Path(out)
    tmp = out / f".final-{uuid.uuid4().hex}"
    try:
        draft.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        files = sorted(f.name for f in tmp.iterdir())
        for name in files:
            os.replace(tmp / name, out / name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    _write_json(out / METADATA_FILE, {**metadata, "files": files})  # what --overwrite may replace
    return out


def load_target(model: str, dtype: str = "float32") -> tuple[Any, Any, str]:
    """Load a target by local folder or ``packaged:NAME``: (model in eval mode, tokenizer, resolved path).

    Through ``decoding.loading.load_model``: offline, no remote code, safetensors weights only
    (a folder holding only ``pytorch_model.bin`` is refused, never unpickled)."""
    from .loading import model_source, load_model

    if not (model.startswith("packaged:") or Path(model).is_dir()):
        raise FileNotFoundError(f"target {model!r}: expected a Hugging Face folder with config.json, or packaged:NAME")
    directory, _ = model_source(model)
    loaded = load_model(model, device="cpu", dtype=dtype)
    return loaded.model, loaded.tokenizer, str(directory)
