"""``bandit-log drafts``: distil task-aligned drafts, cluster unlabelled prompts, evaluate drafts.

Thin over ``decoding.distill``, ``logging_data.prompt_clusters`` and ``decoding.draft_eval``; torch and
transformers are imported only when a command runs.
"""

from __future__ import annotations

from pathlib import Path

import click

from ._common import emit_json, prompt_file_options, say


@click.group()
def drafts() -> None:
    """Distil, cluster and evaluate task-aligned drafts.

    \b
    Example (one draft per domain, then compare them on every domain):
      bandit-log drafts distill --target packaged:smollm2-135m --prompts prompts.parquet \\
          --domain code --out drafts/code --layers 2 --hidden 256 --steps 50
      bandit-log drafts distill --target packaged:smollm2-135m --prompts prompts.parquet \\
          --domain translate --out drafts/translate --layers 2 --hidden 256 --steps 50
      bandit-log drafts eval --target packaged:smollm2-135m --draft drafts/code \\
          --draft drafts/translate --prompts prompts.parquet --per-domain 10 --json
    """


@drafts.command()
@click.option("--target", required=True, help="Target model: a local Hugging Face folder or packaged:NAME.")
@click.option("--prompts", "prompts_path", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Prompts file (Parquet, CSV, JSON Lines or text) with prompt and domain columns (splits made when absent).")
@prompt_file_options
@click.option("--domain", required=True, help="Train on the prompts of this domain.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Output folder (a Hugging Face model folder when done; rerun to resume). New, empty or a distilled draft.")
@click.option("--overwrite", is_flag=True,
              help="Replace a distilled draft made with other settings (only a draft's own files, once the new one is done).")
@click.option("--split", default="train", show_default=True, help="Prompt split to train on ('all' for every row).")
@click.option("--layers", default=2, show_default=True, type=int, help="Transformer blocks of the draft.")
@click.option("--hidden", default="256", show_default=True, help="Draft width, or 'target' for the target's.")
@click.option("--intermediate", default=None, type=int, help="MLP width [default: 768 at width 256; the target's at its width; else 3 x width].")
@click.option("--heads", default=None, type=int, help="Attention heads [default: width / the target's head size].")
@click.option("--kv-heads", default=None, type=int, help="Key/value heads [default: heads / 2 when even, else heads].")
@click.option("--reuse-embeddings/--no-reuse-embeddings", default=True, show_default=True,
              help="Start from the target's embeddings (projected when the draft is narrower).")
@click.option("--freeze-embeddings/--train-embeddings", default=False, show_default=True,
              help="Keep the reused (tied) embeddings fixed.")
@click.option("--steps", default=150, show_default=True, type=int, help="Optimiser steps.")
@click.option("--batch-size", default=8, show_default=True, type=int, help="Sequences per step.")
@click.option("--lr", default=2e-3, show_default=True, type=float, help="Peak learning rate (AdamW, warm-up then cosine).")
@click.option("--max-prompts", default=128, show_default=True, type=int, help="Train prompts used (a seeded sample); 0 for all.")
@click.option("--max-new-tokens", default=48, show_default=True, type=int, help="Length of the target's greedy continuations.")
@click.option("--top-k", default=64, show_default=True, type=int, help="Target log-probs kept per position.")
@click.option("--checkpoint-every", default=40, show_default=True, type=int, help="Steps between checkpoints.")
@click.option("--threads", default=1, show_default=True, type=int,
              help="torch threads (1 is fastest on a CPU shared with other jobs).")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--json", "as_json", is_flag=True, help="Print the training metadata as JSON on stdout.")
def distill(target, prompts_path, domain, out_dir, overwrite, split, layers, hidden, intermediate, heads, kv_heads,
            reuse_embeddings, freeze_embeddings, steps, batch_size, lr, max_prompts, max_new_tokens, top_k, checkpoint_every,
            threads, seed, as_json, prompt_columns, prompts_format) -> None:
    """Distil a small draft from TARGET on one domain's prompts (KL to the target's next-token
    distributions on its own greedy continuations and on the prompts).

    Running the same command again resumes from the last checkpoint. Until it finishes the
    draft trains in a hidden folder beside --out, so a failed run leaves nothing at --out.

    \b
    Example:
      bandit-log drafts distill --target packaged:smollm2-135m --prompts prompts.parquet \\
          --domain code --out drafts/code --layers 2 --hidden 256 --steps 50
    """
    from logging_data.outputs import DRAFT, check_output

    check_output(out_dir, DRAFT, inputs=[("--target", target), ("--prompts", prompts_path)], if_exists="continue")  # before torch loads
    import torch

    from decoding.distill import DistillConfig, DraftArchitecture, distill_draft, load_target, read_domain_prompts
    if threads < 1:
        raise click.BadParameter(f"must be >= 1; got {threads}", param_hint="--threads")
    torch.set_num_threads(threads)
    if hidden == "target":
        width = None
    else:
        try:
            width = int(hidden)
        except ValueError:
            raise click.BadParameter(f"expected an integer or 'target'; got {hidden!r}", param_hint="--hidden") from None
    if intermediate is None and width == 256:
        intermediate = 768
    if heads is None and width is not None:
        heads = max(1, width // 64)
    if kv_heads is None and heads is not None:
        kv_heads = heads // 2 if heads % 2 == 0 else heads
    arch = DraftArchitecture(n_layers=layers, hidden_size=width, intermediate_size=intermediate, n_heads=heads,
                             n_kv_heads=kv_heads, reuse_embeddings=reuse_embeddings, freeze_embeddings=freeze_embeddings)
    config = DistillConfig(domain=domain, split=None if split == "all" else split, max_prompts=max_prompts or None,
                           max_new_tokens=max_new_tokens, top_k=top_k, steps=steps, batch_size=batch_size, lr=lr,
                           checkpoint_every=checkpoint_every, seed=seed)
    config.validate()
    arch.validate()
    texts = read_domain_prompts(prompts_path, domain, config.split, prompt_columns, prompts_format)
    say(f"distilling a draft for domain {domain!r} from {len(texts)} prompt(s) of {prompts_path}")
    model, tokenizer, path = load_target(target)
    result = distill_draft(model, tokenizer, texts, out_dir, config=config, arch=arch, target_name=path,
                           progress=True, overwrite=overwrite)
    meta = result.metadata
    say(f"wrote {out_dir}: {meta['n_params'] / 1e6:.1f}M parameters, {meta['steps']} steps, KL {meta['first_loss']:.3f} -> "
        f"{meta['final_loss']:.3f}, teacher {meta['teacher_seconds']:.0f}s + training {meta['train_seconds']:.0f}s")
    if as_json:
        emit_json({k: v for k, v in meta.items() if k != "losses"} | {"out": str(out_dir), "target_spec": target})


@drafts.command()
@click.option("--prompts", "prompts_path", required=True, type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="Prompts file (Parquet, CSV, JSON Lines or text) with a prompt column.")
@prompt_file_options
@click.option("--k", "k", required=True, type=int, help="Number of clusters.")
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Output Parquet: the prompts with cluster labels as `domain`.")
@click.option("--featurizer", default="tfidf-svd", show_default=True, type=click.Choice(["tfidf-svd", "minilm"]),
              help="Prompt embedding for k-means.")
@click.option("--fit-split", default=None, help="Fit the embedding and k-means on this split only (e.g. train).")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--json", "as_json", is_flag=True, help="Print cluster sizes (and the crosstab with any original domains) as JSON.")
def cluster(prompts_path, k, out_path, featurizer, fit_split, seed, as_json, prompt_columns, prompts_format) -> None:
    """Label prompts by k-means clusters of a prompt embedding, written back as `domain`
    (an existing domain column is kept as x_domain_original).

    \b
    Example:
      bandit-log drafts cluster --prompts prompts.parquet --k 4 --out prompts-clustered.parquet
    """
    from logging_data.prompt_clusters import cluster_prompts, write_clustered
    from logging_data.prompt_table import read_prompt_table

    from logging_data.outputs import PROMPT_TABLE, check_output

    if out_path.resolve() == prompts_path.resolve():
        raise click.BadParameter("must differ from --prompts (the input is never overwritten)", param_hint="--out")
    inputs = [("--prompts", prompts_path)]
    check_output(out_path, PROMPT_TABLE, inputs=inputs, if_exists="continue")  # before any work
    frame = read_prompt_table(prompts_path, columns=prompt_columns, fmt=prompts_format)
    result = cluster_prompts(frame, k, featurizer=featurizer, seed=seed, fit_split=fit_split)
    write_clustered(result.frame, out_path, inputs=inputs)
    say(f"wrote {out_path}: {len(result.frame)} prompts in {k} clusters ({', '.join(f'{c}={n}' for c, n in result.sizes.items())})")
    if result.crosstab is not None and not as_json:
        say(result.crosstab.to_string())
    if as_json:
        doc = {"out": str(out_path), "k": k, "featurizer": featurizer, "sizes": result.sizes, "inertia": result.inertia}
        if result.crosstab is not None:
            doc["crosstab"] = {str(r): {str(c): int(v) for c, v in row.items()} for r, row in result.crosstab.iterrows()}
        emit_json(doc)


@drafts.command(name="eval")
@click.option("--target", required=True, help="Target model: a local Hugging Face folder or packaged:NAME.")
@click.option("--draft", "draft_dirs", required=True, multiple=True, type=click.Path(file_okay=False, exists=True, path_type=Path),
              help="A draft folder (repeat for several); named by the folder name.")
@click.option("--prompts", "prompts_path", required=True, type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="Prompts file (Parquet, CSV, JSON Lines or text) with prompt and domain columns (splits made when absent).")
@prompt_file_options
@click.option("--split", default="test", show_default=True, help="Prompt split to evaluate on ('all' for every row).")
@click.option("--per-domain", default=8, show_default=True, type=int, help="Prompts per domain (a seeded sample).")
@click.option("--domain", "domains", multiple=True, help="Evaluate only these domains (repeatable) [default: all].")
@click.option("--max-new-tokens", default=48, show_default=True, type=int, help="Tokens generated per prompt.")
@click.option("--num-assistant-tokens", default=5, show_default=True, type=int, help="Draft tokens proposed per block.")
@click.option("--schedule", default="constant", show_default=True, type=click.Choice(["constant", "heuristic", "heuristic_transient"]),
              help="transformers' num_assistant_tokens_schedule.")
@click.option("--repeats", default=1, show_default=True, type=int, help="Timed runs per prompt and arm (median kept).")
@click.option("--threads", default=1, show_default=True, type=int, help="torch threads.")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--rows", "rows_path", default=None, type=click.Path(dir_okay=False, path_type=Path),
              help="Also write the per-prompt measurements to this Parquet file.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON on stdout instead of the table.")
def eval_(target, draft_dirs, prompts_path, split, per_domain, domains, max_new_tokens, num_assistant_tokens, schedule, repeats,
          threads, seed, rows_path, as_json, prompt_columns, prompts_format) -> None:
    """Acceptance rate, tokens per target call and speed-up (wall and count-based) of each draft
    against plain decoding, per domain, with the lossless check (assisted == plain greedy).

    \b
    Example:
      bandit-log drafts eval --target packaged:smollm2-135m --draft drafts/code \\
          --draft drafts/translate --prompts prompts.parquet --per-domain 10 --json
    """
    from logging_data.prompt_table import read_prompt_table

    from decoding.draft_eval import DraftEvalConfig, evaluate_drafts, format_table
    from logging_data.outputs import PROMPT_TABLE, check_output

    inputs = [("--target", target), ("--prompts", prompts_path), *(("--draft", d) for d in draft_dirs)]
    if rows_path is not None:  # before any model loads
        check_output(rows_path, PROMPT_TABLE, inputs=inputs, option="--rows", if_exists="continue")
    names = [d.name for d in draft_dirs]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise click.BadParameter(f"draft folder names must be unique (they name the drafts); repeated: {', '.join(dupes)}",
                                 param_hint="--draft")
    config = DraftEvalConfig(split=None if split == "all" else split, per_domain=per_domain, domains=tuple(domains) or None,
                             max_new_tokens=max_new_tokens, num_assistant_tokens=num_assistant_tokens, schedule=schedule,
                             repeats=repeats, seed=seed)
    config.validate()
    frame = read_prompt_table(prompts_path, columns=prompt_columns, fmt=prompts_format, make_splits=True, seed=seed)
    report = evaluate_drafts(target, {d.name: str(d) for d in draft_dirs}, frame, config, threads=threads)
    if rows_path is not None:
        from logging_data.prompt_clusters import write_clustered

        write_clustered(report.rows, rows_path, inputs=inputs, option="--rows")
    if as_json:
        emit_json(report.to_json())
    else:
        click.echo(format_table(report.results))
        rel = report.calibration.relative_costs()
        click.echo("draft step cost / target step: " + ", ".join(f"{k}={v:.3f}" for k, v in rel.items() if k != "plain"))
        lossless = all(r.lossless for r in report.results)
        click.echo(f"lossless (assisted == plain greedy on every prompt): {'yes' if lossless else 'NO'}")
