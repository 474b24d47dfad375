"""Multinomial L2 logistic regression with sample weights and *binary rows*, solved by scipy's L-BFGS.

A binary row (from a negative/positive data set such as SST-2) only says "negative rather than positive": its loss
is the log-softmax over the negative and positive logits alone. So binary data sharpens the negative-vs-positive
direction without teaching the head that nothing is neutral (SST-2 left its neutral sentences out; chat is mostly
neutral). Three-way rows use the ordinary softmax over all classes.

The objective is scikit-learn's for multinomial lbfgs (weighted mean log-loss + ``|W|^2 / (2 C sum(w))``, intercepts
unpenalised, gradient tolerance 1e-4), so with no binary rows it reaches the same optimum. Everything is float64
and deterministic for the same inputs and thread count (training pins BLAS to one thread).
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize
from scipy.special import log_softmax

from classifier.heads.sentiment import NEUTRAL


def log_likelihoods(logits: np.ndarray, labels: np.ndarray, binary: np.ndarray) -> np.ndarray:
    """Each row's log-probability of its label; binary rows leave the neutral class out of the softmax."""
    masked = np.where(binary[:, None] & (np.arange(logits.shape[1]) == NEUTRAL), -np.inf, logits)
    return log_softmax(masked, axis=1)[np.arange(len(labels)), labels]


def _objective(
    theta: np.ndarray, x: np.ndarray, labels: np.ndarray, weights: np.ndarray, c: float, binary: np.ndarray, k: int
) -> tuple[float, np.ndarray]:
    d = x.shape[1]
    w, b = theta[: d * k].reshape(d, k), theta[d * k :]
    z = x @ w + b
    z[binary, NEUTRAL] = -np.inf
    z -= z.max(axis=1, keepdims=True)
    log_norm = np.log(np.exp(z).sum(axis=1))
    rows = np.arange(len(labels))
    total = weights.sum()
    loss = -(weights * (z[rows, labels] - log_norm)).sum() / total + (w * w).sum() / (2 * c * total)
    gradient = np.exp(z - log_norm[:, None])
    gradient[rows, labels] -= 1.0
    gradient *= (weights / total)[:, None]
    return loss, np.concatenate([(x.T @ gradient + w / (c * total)).ravel(), gradient.sum(axis=0)])


def fit(
    x: np.ndarray,
    labels: np.ndarray,
    weights: np.ndarray,
    c: float,
    binary: np.ndarray,
    k: int = 3,
    start: np.ndarray | None = None,
    max_iter: int = 5000,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(W [d, k], b [k], theta)`` for standardised ``x``; ``theta`` warm-starts the next, larger ``C``.

    With ``k == 2`` the classes are negative and positive only (labels 0 and 1) and no row is marked ``binary``.
    """
    d = x.shape[1]
    theta = np.zeros(d * k + k) if start is None else start
    result = minimize(
        _objective, theta, args=(x, labels, weights, c, binary, k), jac=True, method="L-BFGS-B",
        options={"maxiter": max_iter, "maxls": 50, "gtol": 1e-4, "ftol": 64 * np.finfo(float).eps},
    )
    return result.x[: d * k].reshape(d, k), result.x[d * k :], result.x
