"""Chi-square goodness of fit without scipy (torch.special.gammaincc gives the survival function)."""
from collections import Counter
from typing import Dict, Hashable

import torch


def chi_square_pvalue(counts: Counter, expected_probs: Dict[Hashable, float], min_expected: float = 5.0):
    """Pool cells whose expected count is below `min_expected` into one; return (statistic, df, p)."""
    n = sum(counts.values())
    unexpected = [k for k in counts if expected_probs.get(k, 0.0) == 0.0]
    if unexpected:  # an outcome the reference gives zero probability: impossible under H0
        return float("inf"), 0, 0.0
    stat, df, pool_obs, pool_exp = 0.0, -1, 0, 0.0
    for k, p in expected_probs.items():
        e = p * n
        if e < min_expected:
            pool_obs += counts.get(k, 0)
            pool_exp += e
            continue
        stat += (counts.get(k, 0) - e) ** 2 / e
        df += 1
    if pool_exp > 0:
        stat += (pool_obs - pool_exp) ** 2 / max(pool_exp, 1e-12)
        df += 1
    if df <= 0:  # a single possible outcome: nothing to test beyond support, which matched
        return stat, df, 1.0
    p = float(torch.special.gammaincc(torch.tensor(df / 2, dtype=torch.float64),
                                      torch.tensor(stat / 2, dtype=torch.float64)))
    return stat, df, p
