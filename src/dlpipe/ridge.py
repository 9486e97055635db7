"""Ridge regression in closed form, its penalty chosen by exact leave-one-out error.

The network's linear skip path starts from this fit (see `Net.fit_skip`): on a small regression
table the best linear model is a strong start, and the MLP body then learns only the residual.
It is the same estimator as scikit-learn's `RidgeCV` (generalised cross-validation, efficient
leave-one-out), written out so it runs on the network's own encoded inputs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

ALPHAS = tuple(np.logspace(-3, 3, 13))  # the grid the linear baseline searches (baseline.py)
MAX_ROWS = 50_000  # a seeded sample of larger tables: enough for a linear start
MAX_WIDTH = 2048  # wider inputs: the SVD costs rows x width^2, and a linear start matters less


@dataclass
class RidgeFit:
    coef: np.ndarray  # (features, outputs)
    intercept: np.ndarray  # (outputs,)
    alpha: float
    loo_mse: float  # mean squared leave-one-out error at `alpha`

    def predict(self, x: np.ndarray) -> np.ndarray:
        return x @ self.coef + self.intercept


def fit_ridge(x: np.ndarray, y: np.ndarray, alphas: tuple[float, ...] = ALPHAS) -> RidgeFit:
    """Ridge with an unpenalised intercept on `x` (rows, features) and `y` (rows,) or (rows, outputs).

    For each alpha the leave-one-out residuals are r_i / (1 - h_ii), with h the hat matrix's
    diagonal, from one SVD of the centred inputs: no refits. The alpha with the lowest mean squared
    leave-one-out error wins (the first on ties, as in scikit-learn).
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    y2 = y.reshape(len(y), -1)
    x_mean, y_mean = x.mean(0), y2.mean(0)
    xc, yc = x - x_mean, y2 - y_mean
    u, s, vt = np.linalg.svd(xc, full_matrices=False)
    uty = u.T @ yc
    s2 = s**2
    best: tuple[float, float, np.ndarray] | None = None
    for alpha in alphas:
        shrink = s2 / (s2 + alpha)
        # the intercept's column (constant 1/sqrt(n), unpenalised) adds 1/n to every diagonal entry
        hat = (u**2) @ shrink + 1.0 / len(x)
        residual = yc - u @ (shrink[:, None] * uty)
        loo = float(np.mean((residual / (1.0 - hat)[:, None]) ** 2))
        if best is None or loo < best[0]:
            best = (loo, float(alpha), shrink)
    loo, alpha, shrink = best  # type: ignore[misc]
    # nonzero singular values only: a constant column (a missing flag never set) gets weight 0
    inverse = np.divide(shrink, s, out=np.zeros_like(s), where=s > 0)
    coef = vt.T @ (inverse[:, None] * uty)
    return RidgeFit(coef, y_mean - x_mean @ coef, alpha, loo)
