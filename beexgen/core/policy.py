"""Exit policies: their numbers (generated into C as BX_POLICY_*), how many thresholds
each takes, and the rule that decides the exit, in the float32 arithmetic of the C
(firmware_templates/bx_engine.c, bx_exit_decide, is the same rule).

Exits are numbered by the blocks run before them: 0 (the wide exit, when the model has
one), then 1 .. B. Arrays hold one column per exit, column k = exit first_exit + k.

  NONE        run every block.
  ENTROPY     the paper's rule: at exit e, exit when the fractional entropy reduction
              (H_{e-1} - H_e) / H_{e-1} < tau. Written without a division as
              (H_{e-1} - H_e) < tau * H_{e-1}. The first exit (exit 0 of a wide model,
              exit 1 of the paper's model) compares with H_{-1} = the entropy of the
              training split's class prior (meta.json `h_prior`), so every exit,
              exit 0 included, can be taken.
  CONFIDENCE  LAMA-style: exit at exit e when conf_e >= t_e (t_e calibrated so the
              early exits keep the final exit's accuracy within a tolerance).
  BUDGET      EERO-style: the same max-probability test with thresholds chosen so the
              mean compute meets a budget.
  PATIENCE    PABEE (Zhou et al., "BERT Loses Patience", NeurIPS 2020): exit at exit e
              when the predicted class has stayed the same for t consecutive exits
              (streak_e = streak_{e-1} + 1 if cls_e == cls_{e-1}, else 0; the first
              exit's streak is 0): exit when streak_e >= t. t = 0 leaves at the first exit.
One threshold for ENTROPY and PATIENCE, one per early exit (every exit but the last) for
CONFIDENCE and BUDGET.
The last exit always exits.

Adding a policy: its number, threshold count and calibration options here, its rule in
`decide` and in bx_engine.c, its calibration in train/policies.py (CALIBRATORS). Nothing
else names it: the C enum, the serial names, the artifact check and the CLI's choices
are generated or read from here.
This module needs numpy only inside `decide`, so host-only installs can read the names.
"""
from __future__ import annotations

import enum


class Policy(enum.IntEnum):
    NONE = 0
    ENTROPY = 1
    CONFIDENCE = 2
    BUDGET = 3
    PATIENCE = 4


class CalibrationError(ValueError):
    """No thresholds meet what was asked (a budget or ceiling below the cheapest exit),
    or calibration options that cannot work."""


NAMES = tuple(p.name.lower() for p in Policy)      # as meta.json and the serial line spell them
DEFAULT_POLICY = "confidence"                      # the shipped exit policy
F32_MAX = 3.4028234663852886e38                    # the largest threshold (float32's largest finite value)

# One line each for `beexgen calibrate --help`.
SUMMARY = {
    "none": "run every block",
    "entropy": "the paper's rule: exit when the fractional entropy reduction between consecutive exits "
               "falls below tau (best validation accuracy under --ceiling)",
    "confidence": "LAMA-style: per-exit confidence thresholds such that, with probability 1-delta, sentences "
                  "leaving early lose at most --tolerance accuracy against the last exit (Clopper-Pearson "
                  "bound, Bonferroni over exits)",
    "budget": "EERO-style: thresholds meeting a mean compute --budget with the best accuracy",
    "patience": "PABEE: exit once the class has stayed the same for t exits in a row (the smallest t "
                "within --tolerance of the last exit's validation accuracy)",
}

# Each policy's calibration options (`beexgen export` / `calibrate` flags) and their
# defaults (None: unset unless given); train/policies.py CALIBRATORS runs them.
POLICY_OPTIONS: dict[str, dict] = {
    "none": {},
    "entropy": {"tolerance": 0.005, "ceiling": None},
    "confidence": {"tolerance": 0.01, "delta": 0.05},
    "budget": {"budget": None, "unit": "depth"},
    "patience": {"tolerance": 0.005},
}

# The values each calibration option may take, (lo, hi[, "open_lo" | "open_hi" | "open"]):
# the CLI's option types check them when the command line is parsed (beexgen/cli.py).
OPTION_RANGES: dict[str, tuple] = {
    "tolerance": (0.0, 1.0, "open_hi"),      # accuracy given up, a fraction
    "delta": (0.0, 1.0, "open"),             # a probability strictly between 0 and 1
    "ceiling": (0.0, 1.0, "open_lo"),        # fraction of full depth
    "budget": (0.0, 1.0, "open_lo"),         # fraction of full depth
}


def threshold_min(policy: Policy | int | str) -> float:
    """The smallest threshold `policy` takes: the entropy rule's tau may be negative (exit
    only when the entropy rose by more than |tau| H); probabilities, counts and the others
    are >= 0."""
    p = Policy[policy.upper()] if isinstance(policy, str) else Policy(int(policy))
    return -F32_MAX if p == Policy.ENTROPY else 0.0


def n_thresholds(policy: Policy | int | str, n_exits: int) -> int:
    """Thresholds `policy` takes on a model with n_exits exits."""
    p = Policy[policy.upper()] if isinstance(policy, str) else Policy(int(policy))
    return {Policy.NONE: 0, Policy.ENTROPY: 1, Policy.PATIENCE: 1}.get(p, n_exits - 1)


def exit_of_column(k, first_exit: int):
    """The exit number of tensor column(s) k (column k = exit first_exit + k; first_exit is
    0 with a wide exit, else 1). With column_of_exit, the one place the two are converted."""
    import numpy as np
    return np.asarray(k) + first_exit


def column_of_exit(e, first_exit: int):
    """The tensor column of exit number(s) e (the inverse of exit_of_column)."""
    import numpy as np
    return np.asarray(e) - first_exit


def decide(policy: Policy | int, thresholds, conf, entropy, *, cls=None, first_exit: int = 1,
           h_prior: float = float("inf")):
    """Exit number taken (first_exit .. first_exit + E - 1) for each row of the exit
    statistics (N, E): conf and entropy float32, cls the class of each exit (the C's
    bx_exit_stats). h_prior: H_{-1} of the entropy rule (float32); the default,
    infinity, never takes the first exit (a drop from infinity is never small)."""
    import numpy as np

    policy = Policy(int(policy))
    conf = np.asarray(conf, dtype=np.float32)
    entropy = np.asarray(entropy, dtype=np.float32)
    n, n_exits = conf.shape
    thr = np.asarray(thresholds, dtype=np.float32).reshape(-1)
    if thr.size != n_thresholds(policy, n_exits):
        raise ValueError(f"the {policy.name.lower()} policy takes {n_thresholds(policy, n_exits)} threshold(s) "
                         f"on {n_exits} exits, got {thr.size}")
    take = np.zeros((n, n_exits), dtype=bool)
    take[:, -1] = True
    if policy == Policy.ENTROPY:
        prev = np.full(n, np.float32(h_prior), dtype=np.float32)
        with np.errstate(invalid="ignore"):      # inf - inf, inf * 0: NaN compares false, as in C
            for b in range(n_exits - 1):
                drop = prev - entropy[:, b]
                take[:, b] = drop < thr[0] * prev
                prev = entropy[:, b]
    elif policy in (Policy.CONFIDENCE, Policy.BUDGET):
        for b in range(n_exits - 1):
            take[:, b] = conf[:, b] >= thr[b]
    elif policy == Policy.PATIENCE:
        if cls is None:
            raise ValueError("the patience policy needs each exit's class (cls=...)")
        cls = np.asarray(cls)
        streak = np.zeros(n, dtype=np.float32)
        for b in range(n_exits - 1):
            if b > 0:
                streak = np.where(cls[:, b] == cls[:, b - 1], streak + 1, 0).astype(np.float32)
            take[:, b] = streak >= thr[0]
    return exit_of_column(take.argmax(axis=1), first_exit)
