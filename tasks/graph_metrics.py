"""The concept-graph measures shared by ``concept_graph`` and the miniature world's
``shapes_graph``: a request erases one concept e and every concept c of the graph is
measured before (G_0) and after (G_e); Δ_e(c) = G_e(c) − G_0(c).

- ``locality``: Spearman correlation, over c ≠ e, between the text similarity of c to e
  and the drop −Δ_e(c) (positive: the damage falls on what the model considers close);
- ``abnormal``: concepts c ≠ e whose drop is far above what their similarity predicts
  (residual of a least-squares line of drop on similarity, more than ``z`` standard
  deviations): collateral damage the distance does not explain;
- across requests, the Δ matrix and its asymmetry (mean over pairs of |Δ_a(b) − Δ_b(a)|).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
import torch

from erasebench.figures import Figure, heatmap_figure


def text_similarity(encode_text: Callable[[list[str]], torch.Tensor], concept: str,
                    others: Sequence[str]) -> np.ndarray:
    """Cosine similarity of each of ``others``' flattened token embeddings to ``concept``'s
    (the base model's text encoder, as AP measures concept distance)."""
    with torch.no_grad():
        embeddings = encode_text([concept, *others]).float().cpu().flatten(1)
    embeddings = torch.nn.functional.normalize(embeddings, dim=1)
    return (embeddings[1:] @ embeddings[0]).numpy()


def locality(similarity: np.ndarray, drop: np.ndarray) -> float | None:
    """Spearman(similarity, drop); None when either side is constant (no ranking)."""
    if len(drop) < 3 or np.ptp(drop) == 0 or np.ptp(similarity) == 0:
        return None
    # Pearson of the average ranks (ties share theirs) is Spearman's rho; pandas does it
    # without torchmetrics, whose import costs every command that loads the tasks ~3 s.
    ranks = pd.DataFrame({"similarity": similarity, "drop": drop}).rank()
    return float(ranks["similarity"].corr(ranks["drop"]))


def abnormal(similarity: np.ndarray, drop: np.ndarray, z: float = 2.0) -> np.ndarray:
    """Mask of the concepts whose drop's residual from the line drop ~ similarity exceeds
    ``z`` standard deviations of the residuals."""
    if len(drop) < 3 or np.ptp(similarity) == 0:
        return np.zeros(len(drop), dtype=bool)
    slope, intercept = np.polyfit(similarity, drop, 1)
    residual = drop - (slope * similarity + intercept)
    spread = residual.std()
    return residual > z * spread if spread > 0 else np.zeros(len(drop), dtype=bool)


def delta_matrix(rows: pd.DataFrame, order: Sequence[str]) -> pd.DataFrame:
    """Δ_e(c) (mean over duplicates) from one eraser's tidy rows with ``delta/<c>`` metrics;
    rows = the requests (erased concept), columns = measured concepts, in ``order``."""
    deltas = rows[rows["metric"].str.startswith("delta/")].copy()
    if deltas.empty:
        return pd.DataFrame()
    deltas["concept"] = deltas["metric"].str.slice(len("delta/"))
    matrix = deltas.pivot_table(index="request", columns="concept", values="value",
                                aggfunc="mean")
    index = [c for c in order if c in matrix.index] + \
        sorted(c for c in matrix.index if c not in order)
    return matrix.reindex(index=index, columns=[c for c in order if c in matrix.columns])


def asymmetry(matrix: pd.DataFrame) -> float:
    """Mean over unordered pairs {a, b} with both rows measured of |Δ_a(b) − Δ_b(a)|."""
    gaps = [abs(matrix.loc[a, b] - matrix.loc[b, a])
            for i, a in enumerate(matrix.index) for b in matrix.index[i + 1:]
            if b in matrix.columns and a in matrix.columns]
    gaps = [g for g in gaps if not np.isnan(g)]
    return float(np.mean(gaps)) if gaps else float("nan")


def shown(concept: str) -> str:
    """A concept as tables and figures print it: a blank one (AP's graph has the prompt " ")
    in quotes, not as an empty cell."""
    return concept if concept.strip() else f'"{concept}"'


def matrices_markdown(rows: pd.DataFrame, order: Sequence[str], unit: str,
                      noun: str = "concept", digits: int = 1) -> str:
    """Every eraser's Δ matrix (row = erased ``noun``) and its asymmetry, as markdown."""
    parts = []
    for eraser, frame in rows.groupby("eraser", sort=True):
        matrix = delta_matrix(frame, order)
        if matrix.empty:
            continue
        parts.append(f"\n**{eraser}**: Δ matrix ({unit}; row = erased {noun}), "
                     f"asymmetry {asymmetry(matrix):.3g}\n\n")
        header = f"| erased ↓ / {noun} → | " + " | ".join(map(shown, matrix.columns)) + " |"
        lines = [header, "|---" * (len(matrix.columns) + 1) + "|"]
        for erased, row in matrix.iterrows():
            cells = ["" if np.isnan(v) else f"{v:+.{digits}f}" for v in row.to_numpy()]
            lines.append(f"| {shown(str(erased))} | " + " | ".join(cells) + " |")
        parts.append("\n".join(lines) + "\n")
    return "".join(parts)


def delta_heatmaps(rows: pd.DataFrame, order: Sequence[str], stem: str, title: str,
                   limit: float | None = None) -> list[Figure]:
    """Every eraser's Δ matrix as a heat map, in one figure (none where no eraser has one),
    concepts labelled as :func:`shown` prints them; the scale is ± ``limit``, or ± the
    largest |Δ| measured where None."""
    matrices = {str(eraser): delta_matrix(frame, order).rename(index=shown, columns=shown)
                for eraser, frame in rows.groupby("eraser", sort=True)}
    matrices = {name: matrix for name, matrix in matrices.items() if not matrix.empty}
    if not matrices:
        return []
    if limit is None:
        largest = np.nanmax([np.nanmax(np.abs(m.to_numpy())) for m in matrices.values()])
        limit = max(float(largest), 1e-6)
    return [heatmap_figure(matrices, stem, title, limit=limit)]
