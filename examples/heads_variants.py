"""Is the head's architecture what holds summarize and translate back? Three variants from the
EAGLE line against the project's head (``decoding.heads``), trained on one domain's train prompts
and scored on its validation prompts (the test split is not read), under the H200 profile.

    python examples/heads.py --live-per-domain 0            # first: OUT/states (the greedy outputs' states)
    python examples/heads_variants.py --out out/heads --domain summarize

Variants (each trained on the same rows, seeded, 4 epochs unless said):

- ``base``: the project's head (``decoding.heads.train_head``: ``[h_t; e(x_{t+1})]`` -> residual MLPs
  -> ``h_{t+1}``, prompt rows included), what ``examples/heads.py`` logs;
- ``rollout``: the same head trained on two steps, the second fed its own first prediction
  (EAGLE-3's "training-time test": the head drafts from its own features after the first token);
- ``layers``: the head reads the target's layers ``LAYERS`` beside the final state and predicts
  them all (EAGLE-3's low/mid/high features; one more forward over the domain's prompts);
- ``attention``: one causal self-attention + MLP block over the earlier positions' inputs, with its
  own drafted positions as keys (EAGLE-1's one-layer decoder), 10 epochs of 2 sequences a batch.

For each: the first drafted token's accuracy at the output positions, and every draft length x gate
(``decoding.drafters.tuning.head_grid()``) replayed exactly (``decoding.heads.replay_chains``):
acceptance and count speed-up under the H200 profile (a head step assumed at
``decoding.drafters.heads_run.H200_HEAD_STEP_S`` for every variant, although ``layers`` and ``attention`` cost more).
Writes ``OUT/variants-<domain>.json``.

Research only, and longer than an example should be (BENCHMARKS.md, "Benchmark commands"): the
three variants are experiments the project did not adopt, so their training code stays here rather
than in the package; everything they share with the heads run is ``decoding.drafters``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from decoding.drafters.heads_run import H200_HEAD_STEP_S, VOCAB_SIZE
from decoding.drafters.tuning import TUNE_LENGTHS, HeadSetting, head_setting_table, pick_setting, table_json

HERE = Path(__file__).resolve().parent
JOINT_LOG = HERE / "data" / "smollm2-joint-log"
MODELS = HERE / "models" / "smollm2-joint.toml"
H200 = HERE / "profiles" / "h200-smollm2-135m-fp32.json"

#: the target's layers the ``layers`` variant reads beside the final normed state (SmolLM2-135M has 30)
LAYERS = (8, 16, 24)
VARIANTS = ("base", "rollout", "layers", "attention")


def _say(message: str) -> None:
    print(f"[variants] {message}", file=sys.stderr, flush=True)


def _layer_states(model: Any, seqs: list[list[int]], batch_size: int = 16) -> list[np.ndarray]:
    """Each sequence's states at ``LAYERS``, RMS-normalised per position: (T, len(LAYERS) * H) float16."""
    import torch

    from decoding.heads import forward_batches

    out: dict[int, np.ndarray] = {}
    for ii, res in forward_batches(model, seqs, batch_size):
        for r, i in enumerate(ii):
            f = torch.stack([res.hidden_states[layer][r, :len(seqs[i])].float() for layer in LAYERS], 1)
            f = f / f.pow(2).mean(-1, keepdim=True).add(1e-6).sqrt()
            out[i] = f.reshape(len(seqs[i]), -1).cpu().numpy().astype(np.float16)
    return [out[i] for i in range(len(seqs))]


def _mlp_head(torch: Any, n_features: int, hidden: int, vocab: list[int]) -> Any:
    """``decoding.heads.FeatureHead``'s shape over ``n_features`` inputs: the first ``hidden`` of its
    output are the final state (what the tokens are read from), the rest the other layers'."""

    class Head(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("vocab", torch.tensor(vocab))
            self.fc = torch.nn.Linear(n_features + hidden, hidden)
            self.blocks = torch.nn.ModuleList(torch.nn.Sequential(
                torch.nn.LayerNorm(hidden), torch.nn.Linear(hidden, 2 * hidden), torch.nn.SiLU(), torch.nn.Linear(2 * hidden, hidden))
                for _ in range(2))
            self.extra = torch.nn.Linear(hidden, n_features - hidden) if n_features > hidden else None

        def forward(self, f: Any, e: Any) -> Any:
            x = self.fc(torch.cat([f, e], -1))
            for block in self.blocks:
                x = x + block(x)
            return torch.cat([x, self.extra(x)], -1) if self.extra is not None else x

    return Head()


def _rope(torch: Any, x: Any, pos: Any) -> Any:
    """Rotary positions on (..., n_heads, d) at ``pos`` (one per leading row)."""
    half = x.shape[-1] // 2
    ang = pos[:, None].float() / (10000 ** (torch.arange(half, dtype=torch.float32) / half))[None]
    cos, sin = ang.cos()[:, None, :], ang.sin()[:, None, :]
    return torch.cat([x[..., :half] * cos - x[..., half:] * sin, x[..., :half] * sin + x[..., half:] * cos], -1)


def _attention_head(torch: Any, hidden: int, vocab: list[int], n_heads: int = 9) -> Any:
    class Head(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("vocab", torch.tensor(vocab))
            self.nh, self.d = n_heads, hidden // n_heads
            self.fc = torch.nn.Linear(2 * hidden, hidden)
            self.n1, self.n2 = torch.nn.RMSNorm(hidden), torch.nn.RMSNorm(hidden)
            self.qkv, self.o = torch.nn.Linear(hidden, 3 * hidden), torch.nn.Linear(hidden, hidden)
            self.mlp = torch.nn.Sequential(torch.nn.Linear(hidden, 2 * hidden), torch.nn.SiLU(), torch.nn.Linear(2 * hidden, hidden))

        def qkv_at(self, z: Any, pos: Any) -> tuple[Any, Any, Any]:  # z (R, H), pos (R,) -> (R, nh, d) each
            q, k, v = self.qkv(self.n1(z)).view(len(z), 3, self.nh, self.d).unbind(1)
            return _rope(torch, q, pos), _rope(torch, k, pos), v

        def finish(self, z: Any, attended: Any) -> Any:
            z = z + self.o(attended)
            return z + self.mlp(self.n2(z))

        def forward(self, h: Any, e: Any) -> Any:  # (B, T, H): teacher-forced, causal
            z = self.fc(torch.cat([h, e], -1))
            B, T, H = z.shape
            q, k, v = self.qkv_at(z.reshape(B * T, H), torch.arange(T).repeat(B))
            q, k, v = (t.view(B, T, self.nh, self.d).transpose(1, 2) for t in (q, k, v))
            a = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
            return self.finish(z, a.transpose(1, 2).reshape(B, T, H))

    return Head()


def main(out: str | Path = "out/heads", domain: str = "summarize", variants: tuple[str, ...] = VARIANTS, epochs: int = 4,
         seed: int = 0, threads: int | None = 2, max_prompts: int | None = None) -> dict[str, Any]:
    import torch

    from decoding import heads
    from decoding.pricing import load_calibration
    from decoding.models import load_models_config
    from decoding.session import DecodingSession
    from decoding.drafters.states import run_states

    out = Path(out)
    unknown = set(variants) - set(VARIANTS)
    if unknown:
        raise SystemExit(f"--variants: unknown {sorted(unknown)}; expected some of {list(VARIANTS)}")
    plain, (prompts, outputs, states, argmaxes, _) = run_states(out, JOINT_LOG)
    dom, split = plain["domain"].astype(str).to_numpy(), plain["split"].astype(str).to_numpy()
    if domain not in set(dom):
        raise SystemExit(f"--domain: {domain!r} is not a domain of {out / 'states'}; it has {sorted(set(dom))}")
    train = np.flatnonzero((dom == domain) & (split == "train"))[:max_prompts]
    val = np.flatnonzero((dom == domain) & (split == "validation"))[:max_prompts]
    session = DecodingSession(load_models_config(MODELS), threads=threads)
    model = session.target.model
    embed, out_w = heads.embedding_and_output(model)
    H = int(np.asarray(states[0]).shape[1])
    h200 = load_calibration(H200)
    torch.manual_seed(seed)
    rows = heads.collect_from_states([prompts[i] for i in train], [outputs[i] for i in train], [states[i] for i in train],
                                     [argmaxes[i] for i in train])
    vocab = heads.frequent_vocabulary(rows.x_next2, VOCAB_SIZE, session.eos_ids)
    w_sub = out_w.detach()[torch.tensor(vocab)].float()
    index_of = np.full(out_w.shape[0], -100)
    index_of[vocab] = np.arange(len(vocab))
    layer_feats: dict[int, np.ndarray] = {}
    if "layers" in variants:
        t = time.perf_counter()
        both = np.concatenate([train, val])
        for i, f in zip(both, _layer_states(model, [prompts[i] + outputs[i] for i in both])):
            layer_feats[int(i)] = f
        _say(f"layers {LAYERS}: one forward over {len(both)} prompts, {time.perf_counter() - t:.0f} s")

    def features(i: int, with_layers: bool) -> np.ndarray:
        f = np.array(states[i], dtype=np.float32)
        return np.concatenate([f, layer_feats[int(i)].astype(np.float32)], 1) if with_layers else f

    def fit_mlp(with_layers: bool, rollout: bool) -> Any:
        """The MLP head on (f_t, x_{t+1}) -> f_{t+1} (+ x_{t+2}); ``rollout``: and a second step from its own f̂_{t+1}."""
        F, FN, FN2, X, X2, Y, Y2 = ([] for _ in range(7))
        for i in train:
            f, s, a = features(i, with_layers), prompts[i] + outputs[i], argmaxes[i]
            F.append(f[:-3]), FN.append(f[1:-2]), FN2.append(f[2:-1])
            X.append(np.asarray(s[1:-2])), X2.append(np.asarray(s[2:-1])), Y.append(a[1:-2]), Y2.append(a[2:-1])
        F, FN, FN2 = (np.concatenate(v).astype(np.float16) for v in (F, FN, FN2))
        X, X2, Y, Y2 = (np.concatenate(v) for v in (X, X2, Y, Y2))
        Yi, Y2i = index_of[Y], index_of[Y2]
        head = _mlp_head(torch, F.shape[1], H, vocab)
        rng = np.random.default_rng(seed)
        opt = torch.optim.AdamW(head.parameters(), lr=1e-3, weight_decay=0.0)
        n, bs = len(F), 256
        sched = heads.one_cycle(opt, 1e-3, epochs * ((n + bs - 1) // bs))

        def step_loss(pred: Any, target: Any, labels: Any) -> Any:
            loss = torch.nn.functional.smooth_l1_loss(pred[:, :H], target[:, :H])
            if pred.shape[1] > H:
                loss = loss + torch.nn.functional.smooth_l1_loss(pred[:, H:], target[:, H:])
            return loss + 0.1 * torch.nn.functional.cross_entropy(pred[:, :H] @ w_sub.T, labels, ignore_index=-100)

        head.train()
        for _ in range(epochs):
            perm = rng.permutation(n)
            for s0 in range(0, n, bs):
                b = perm[s0:s0 + bs]
                with torch.no_grad():
                    e, e2 = embed(torch.from_numpy(X[b]).long()).float(), embed(torch.from_numpy(X2[b]).long()).float()
                pred = head(torch.from_numpy(F[b].astype(np.float32)), e)
                loss = step_loss(pred, torch.from_numpy(FN[b].astype(np.float32)), torch.from_numpy(Yi[b]).long())
                if rollout:
                    loss = loss + step_loss(head(pred, e2), torch.from_numpy(FN2[b].astype(np.float32)), torch.from_numpy(Y2i[b]).long())
                opt.zero_grad()
                loss.backward()
                opt.step()
                sched.step()
        return head.eval()

    def mlp_chains(head: Any, with_layers: bool, k: int) -> list[tuple[np.ndarray, np.ndarray]]:
        res = []
        with torch.no_grad():
            for i in val:
                s, P = prompts[i] + outputs[i], len(prompts[i])
                f, tok = torch.from_numpy(features(i, with_layers)[P - 1:len(s) - 1]), torch.tensor(s[P:]).long()
                toks, confs = [], []
                for _ in range(k):
                    f = head(f, embed(tok).float())
                    p, best = torch.softmax(f[:, :H] @ w_sub.T, -1).max(-1)
                    tok = head.vocab[best]
                    toks.append(tok.numpy()), confs.append(p.numpy())
                res.append((np.stack(toks, 1), np.stack(confs, 1)))
        return res

    def fit_attention(attn_epochs: int = 10, bs: int = 2) -> Any:
        head = _attention_head(torch, H, vocab)
        data = []
        for i in train:
            s, a = prompts[i] + outputs[i], np.asarray(argmaxes[i])
            f = np.array(states[i], dtype=np.float32)
            data.append((f[:-1], np.asarray(s[1:]), f[1:], index_of[a[1:]]))
        order = sorted(range(len(data)), key=lambda j: len(data[j][0]))
        batches = [order[j:j + bs] for j in range(0, len(order), bs)]
        rng = np.random.default_rng(seed)
        opt = torch.optim.AdamW(head.parameters(), lr=1e-3, weight_decay=0.0)
        sched = heads.one_cycle(opt, 1e-3, attn_epochs * len(batches))
        head.train()
        for _ in range(attn_epochs):
            for bi in rng.permutation(len(batches)):
                b = batches[bi]
                T = max(len(data[j][0]) for j in b)
                hb, tb = torch.zeros(len(b), T, H), torch.zeros(len(b), T, H)
                xb, lb, m = torch.zeros(len(b), T, dtype=torch.long), torch.full((len(b), T), -100), torch.zeros(len(b), T)
                for r, j in enumerate(b):
                    h, x, hn, lab = data[j]
                    hb[r, :len(h)], xb[r, :len(h)], tb[r, :len(h)] = torch.from_numpy(h), torch.from_numpy(x), torch.from_numpy(hn)
                    lb[r, :len(h)], m[r, :len(h)] = torch.from_numpy(lab), 1
                with torch.no_grad():
                    e = embed(xb).float()
                pred = head(hb, e)
                loss = (torch.nn.functional.smooth_l1_loss(pred, tb, reduction="none").mean(-1) * m).sum() / m.sum()
                loss = loss + 0.1 * torch.nn.functional.cross_entropy((pred @ w_sub.T).view(-1, len(vocab)), lb.view(-1), ignore_index=-100)
                opt.zero_grad()
                loss.backward()
                opt.step()
                sched.step()
        return head.eval()

    def attention_chains(head: Any, k: int) -> list[tuple[np.ndarray, np.ndarray]]:
        """Row p - (P - 1): k tokens drafted from position p, attending to the true positions <= p and its own drafts."""
        res = []
        with torch.no_grad():
            for i in val:
                s, P = prompts[i] + outputs[i], len(prompts[i])
                z = head.fc(torch.cat([torch.from_numpy(np.array(states[i], dtype=np.float32)[:-1]),
                                       embed(torch.tensor(s[1:]).long()).float()], -1))
                T = len(z)
                q, K, V = head.qkv_at(z, torch.arange(T))
                K, V = K.transpose(0, 1), V.transpose(0, 1)  # (nh, T, d)
                rows = torch.arange(P - 1, T)
                causal = torch.arange(T)[None, :] <= rows[:, None]
                scores = torch.einsum("rhd,htd->rht", q[rows], K) / math.sqrt(head.d)
                w = torch.softmax(scores.masked_fill(~causal[:, None, :], float("-inf")), -1)
                cur = head.finish(z[rows], torch.einsum("rht,htd->rhd", w, V).reshape(len(rows), -1))
                toks, confs, extra_k, extra_v = [], [], [], []
                for j in range(k):
                    p, best = torch.softmax(cur @ w_sub.T, -1).max(-1)
                    tok = head.vocab[best]
                    toks.append(tok.numpy()), confs.append(p.numpy())
                    if j == k - 1:
                        break
                    zj = head.fc(torch.cat([cur, embed(tok).float()], -1))
                    qj, kj, vj = head.qkv_at(zj, rows + j + 1)
                    extra_k.append(kj), extra_v.append(vj)
                    EK, EV = torch.stack(extra_k, 2), torch.stack(extra_v, 2)  # (R, nh, j + 1, d)
                    s_prefix = torch.einsum("rhd,htd->rht", qj, K).masked_fill(~causal[:, None, :], float("-inf"))
                    w = torch.softmax(torch.cat([s_prefix, torch.einsum("rhd,rhjd->rhj", qj, EK)], -1) / math.sqrt(head.d), -1)
                    att = torch.einsum("rht,htd->rhd", w[..., :T], V) + torch.einsum("rhj,rhjd->rhd", w[..., T:], EV)
                    cur = head.finish(zj, att.reshape(len(rows), -1))
                res.append((np.stack(toks, 1), np.stack(confs, 1)))
        return res

    result: dict[str, Any] = {"domain": domain, "train_prompts": int(len(train)), "validation_prompts": int(len(val)),
                              "epochs": epochs, "seed": seed, "layers": list(LAYERS), "variants": {}}
    k_max = max(TUNE_LENGTHS)
    for name in variants:
        t = time.perf_counter()
        if name == "base":
            head, _ = heads.train_head(model, rows, vocab, epochs=epochs, seed=seed)
            chains = heads.draft_chains_many(head, model, [(states[i], prompts[i] + outputs[i], len(prompts[i]) - 1) for i in val],
                                             k_max, with_confidence=True)
        elif name == "attention":
            head = fit_attention()
            chains = attention_chains(head, k_max)
        else:
            head = fit_mlp(with_layers=name == "layers", rollout=name == "rollout")
            chains = mlp_chains(head, name == "layers", k_max)
        seconds = time.perf_counter() - t
        first = np.concatenate([c[:-1, 0] == np.asarray(outputs[i][1:]) for (c, _), i in zip(chains, val)])
        table = head_setting_table(chains, [prompts[i] for i in val], [outputs[i] for i in val], session.max_new_tokens, h200,
                                   H200_HEAD_STEP_S)
        pick, fastest = pick_setting(table), pick_setting(table, 0.0)
        result["variants"][name] = {"first_token_accuracy": float(first.mean()), "k3": table[HeadSetting(3)], "fastest": fastest.name,
                                    "fastest_value": table[fastest], "picked": pick.name if pick else None,
                                    "picked_value": table[pick] if pick else None, "settings": table_json(table), "seconds": seconds,
                                    "parameters": int(sum(p.numel() for p in head.parameters()))}
        v = result["variants"][name]
        _say(f"{name}: first token {v['first_token_accuracy']:.3f}; k3 acceptance {v['k3']['acceptance']:.3f}; fastest {fastest.name} "
             f"{table[fastest]['count']:.3f}; {seconds:.0f} s")
    (out / f"variants-{domain}.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="out/heads", help="the examples/heads.py output folder (its OUT/states)")
    parser.add_argument("--domain", default="summarize")
    parser.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated, of {','.join(VARIANTS)}")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--max-prompts", type=int, default=None, help="at most this many train and validation prompts (a quick look)")
    a = parser.parse_args()
    res = main(a.out, a.domain, tuple(v for v in a.variants.split(",") if v), a.epochs, threads=a.threads, max_prompts=a.max_prompts)
    print(f"{res['domain']}: {res['train_prompts']} train / {res['validation_prompts']} validation prompts; H200 profile, head step assumed")
    print(f"{'variant':10s} {'params':>9s} {'1st token':>9s} {'k3 acc':>7s} {'k3 count':>8s}  {'fastest':12s} {'count':>6s} {'acc':>5s}  seconds")
    for name, v in res["variants"].items():
        f = v["fastest_value"]
        print(f"{name:10s} {v['parameters']:9d} {v['first_token_accuracy']:9.3f} {v['k3']['acceptance']:7.3f} {v['k3']['count']:8.3f}  "
              f"{v['fastest']:12s} {f['count']:6.3f} {f['acceptance']:5.2f}  {v['seconds']:.0f}")
