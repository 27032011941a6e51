"""Agreement statistics for nominal labels.

``percent_agreement``: the share of annotator pairs on one record that chose the same value.
``alpha_nominal``: Krippendorff's alpha over many records (units), from the coincidence
matrix. Both are undefined (None) without at least two pairable values.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping


def percent_agreement(counts: Mapping[str, int]) -> float | None:
    n = sum(counts.values())
    if n < 2:
        return None
    return sum(c * (c - 1) for c in counts.values()) / (n * (n - 1))


def alpha_nominal(units: Iterable[Mapping[str, int]]) -> float | None:
    """Krippendorff's alpha, nominal metric. ``units``: per record, value -> how many
    annotators chose it. Units with fewer than two values are not pairable and ignored."""
    coincidence: Counter[tuple[str, str]] = Counter()
    for counts in units:
        m = sum(counts.values())
        if m < 2:
            continue
        for c, n_c in counts.items():
            for k, n_k in counts.items():
                pairs = n_c * (n_c - 1) if c == k else n_c * n_k
                if pairs:
                    coincidence[c, k] += pairs / (m - 1)
    marginals: Counter[str] = Counter()
    for (c, _), o in coincidence.items():
        marginals[c] += o
    n = sum(marginals.values())
    if n <= 1:
        return None
    observed = sum(o for (c, k), o in coincidence.items() if c != k)
    expected = (n * n - sum(v * v for v in marginals.values())) / (n - 1)
    if expected == 0:
        return None  # everybody used one value: agreement is not measurable
    return 1 - observed / expected
