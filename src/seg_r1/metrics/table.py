"""Markdown tables of COD/SOD results in the field's column order (SPEC section 7)."""

from __future__ import annotations

from collections.abc import Mapping

#: (header, result key) in the field's order: Sα, Fβw, Fβ(mean), Eφ(mean), Eφ(max), MAE, then the
#: adaptive and max variants.
SOD_TABLE_COLUMNS: tuple[tuple[str, str], ...] = (
    ("Sα", "Smeasure"),
    ("Fβw", "wFmeasure"),
    ("Fβ(mean)", "meanFm"),
    ("Eφ(mean)", "meanEm"),
    ("Eφ(max)", "maxEm"),
    ("MAE", "MAE"),
    ("adpFm", "adpFm"),
    ("maxFm", "maxFm"),
    ("adpEm", "adpEm"),
)


def format_sod_table(
    results: Mapping[str, Mapping[str, float]], name_header: str = "dataset", digits: int = 3
) -> str:
    """Render ``{row name: SODMetrics.result()}`` as a markdown table, one row per entry.

    Args:
        results: rows in insertion order; each needs the keys of :data:`SOD_TABLE_COLUMNS`.
        name_header: header of the first column.
        digits: decimals (3, as papers print them).

    Example:
        >>> row = dict(Smeasure=0.8734, wFmeasure=0.76, meanFm=0.78, meanEm=0.9, maxEm=0.93,
        ...            MAE=0.0281, adpFm=0.77, maxFm=0.8, adpEm=0.91)
        >>> print(format_sod_table({"COD10K": row}))
        | dataset | Sα | Fβw | Fβ(mean) | Eφ(mean) | Eφ(max) | MAE | adpFm | maxFm | adpEm |
        |---|---|---|---|---|---|---|---|---|---|
        | COD10K | 0.873 | 0.760 | 0.780 | 0.900 | 0.930 | 0.028 | 0.770 | 0.800 | 0.910 |
    """
    headers = [name_header] + [header for header, _ in SOD_TABLE_COLUMNS]
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    for name, scores in results.items():
        missing = [key for _, key in SOD_TABLE_COLUMNS if key not in scores]
        if missing:
            raise KeyError(f"row {name!r} lacks {missing} (expected SODMetrics.result() keys)")
        cells = [f"{float(scores[key]):.{digits}f}" for _, key in SOD_TABLE_COLUMNS]
        lines.append("| " + " | ".join([str(name), *cells]) + " |")
    return "\n".join(lines)
