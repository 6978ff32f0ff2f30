"""Group prompts that carry no domain label, so that one draft per group can be distilled.

``cluster_prompts(frame, k)`` embeds every prompt with a registered featurizer
(``logging_data.features``: ``tfidf-svd`` by default, cheap and torch-free; ``minilm`` for the
packaged sentence encoder), runs seeded k-means on the embeddings and returns the frame with the
cluster labels (``c0`` … ``c{k-1}``, numbered by decreasing cluster size) as its ``domain``
column. An existing ``domain`` column is kept as ``x_domain_original``. ``write_clustered``
writes the result atomically (temporary file, then rename), so a failure never leaves a
half-written or clobbered prompts file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from .files import atomic_write
from .outputs import PARQUET_KIND_KEY, PROMPT_TABLE, check_output

ORIGINAL_DOMAIN = "x_domain_original"


@dataclass(frozen=True)
class ClusterResult:
    """The relabelled prompts and what k-means found.

    ``frame``: the input rows, ``domain`` replaced by cluster labels; ``sizes``: label -> rows;
    ``inertia``: k-means' within-cluster sum of squares; ``crosstab``: original domain x cluster
    counts when the input had domains, else None.
    """

    frame: pd.DataFrame
    sizes: dict[str, int]
    inertia: float
    crosstab: pd.DataFrame | None


def cluster_prompts(frame: pd.DataFrame, k: int, *, featurizer: str = "tfidf-svd", seed: int = 0,
                    fit_split: str | None = None) -> ClusterResult:
    """Label each row of ``frame`` (needs a ``prompt`` column) with one of ``k`` k-means clusters.

    The featurizer (and k-means) are fitted on the rows of ``fit_split`` when given (e.g.
    ``"train"``, so test prompts never shape the clusters) and applied to every row.
    """
    from sklearn.cluster import KMeans

    from .features import get_featurizer

    if not isinstance(frame, pd.DataFrame) or "prompt" not in frame.columns:
        found = ", ".join(map(str, getattr(frame, "columns", []))) or "nothing"
        raise ValueError(f"prompts must be a DataFrame with a `prompt` column; found columns: {found}")
    if isinstance(k, bool) or not isinstance(k, int) or k < 2:
        raise ValueError(f"`k` must be an integer >= 2; got {k!r}")
    texts = frame["prompt"].astype(str).tolist()
    fit_mask = np.ones(len(frame), dtype=bool)
    if fit_split is not None:
        if "split" not in frame.columns:
            raise ValueError(f"fit_split={fit_split!r} needs a `split` column; the prompts have none")
        fit_mask = (frame["split"].astype("string") == fit_split).fillna(False).to_numpy(dtype=bool)
    n_fit = int(fit_mask.sum())
    if n_fit < k:
        raise ValueError(f"k-means with k={k} needs at least {k} prompts to fit on; found {n_fit}"
                         + (f" in split {fit_split!r}" if fit_split else ""))
    settings = {"seed": seed} if featurizer == "tfidf-svd" else {}
    feat = get_featurizer(featurizer, **settings)
    fit_texts = [t for t, m in zip(texts, fit_mask) if m]
    feat.fit(fit_texts)
    x = np.asarray(feat.transform(texts), dtype=np.float64)
    km = KMeans(n_clusters=k, n_init=10, random_state=seed)
    km.fit(x[fit_mask])
    raw = km.predict(x)
    # stable names: c0 is the largest cluster, ties broken by the lower raw id
    counts = np.bincount(raw, minlength=k)
    order = sorted(range(k), key=lambda c: (-counts[c], c))
    name_of = {c: f"c{i}" for i, c in enumerate(order)}
    labels = [name_of[int(c)] for c in raw]
    out = frame.copy()
    if "domain" in out.columns:
        if ORIGINAL_DOMAIN in out.columns:
            raise ValueError(f"the prompts already have both `domain` and `{ORIGINAL_DOMAIN}`; refusing to overwrite the original labels")
        out[ORIGINAL_DOMAIN] = out["domain"]
    out["domain"] = pd.array(labels, dtype="string")
    sizes = {name_of[c]: int(counts[c]) for c in order}
    crosstab = None
    if ORIGINAL_DOMAIN in out.columns:
        crosstab = pd.crosstab(out[ORIGINAL_DOMAIN].astype("string").fillna("<null>"), out["domain"])
    return ClusterResult(frame=out, sizes=sizes, inertia=float(km.inertia_), crosstab=crosstab)


def write_clustered(frame: pd.DataFrame, path: str | os.PathLike, inputs: Iterable[tuple[str, Any]] = (),
                    option: str = "--out") -> Path:
    """Write ``frame`` to Parquet at ``path`` atomically (temporary file in the same folder, then rename).

    The file records its kind (``outputs.PROMPT_TABLE``) in its schema metadata: an existing file
    is replaced only when it is one, never inside a log, onto or around ``inputs`` (label, path)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    p = Path(path)
    if p.exists() and p.is_dir():
        raise ValueError(f"output {p} is a directory; expected a .parquet file path")
    check_output(p, PROMPT_TABLE, inputs=inputs, option=option, if_exists="continue")
    table = pa.Table.from_pandas(frame, preserve_index=False)
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), PARQUET_KIND_KEY: PROMPT_TABLE.name.encode()})
    p.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write(p, lambda tmp: pq.write_table(table, tmp))
