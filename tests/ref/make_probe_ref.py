#!/usr/bin/python3
"""Reference fits for hlip's linear-probe logistic regression (tests/unit/eval/test_probe.cpp).

scikit-learn's LogisticRegression (Debian's python3-sklearn) on small problems: binary overlapping and
perfectly separable classes, and a three-class multinomial problem, each at several L2 strengths. hlip
minimises (1/n) sum of log-losses + (l2/2) ||W||^2 with unpenalised intercepts; scikit-learn minimises C times
the summed loss + ||W||^2 / 2, the same optimum for C = 1 / (l2 * n). Multinomial intercepts are stored
centred (summing to 0): softmax ignores a common shift, and hlip fixes it that way.

Inputs (x, y, the held-out x_test) are stored, so the C++ test needs no generator. Each fit records the
gradient of hlip's objective at scikit-learn's solution (`gradient_max`, at most 7e-10): how exact the
reference is. newton-cg warns that it did not converge on some cases: its line search stops at float64's
resolution before its own tolerance; `gradient_max` shows the solution is still exact to about 1e-9.

Writes tests/data/probe/logistic.json. Run: /usr/bin/python3 tests/ref/make_probe_ref.py
"""

import json
import os

import numpy as np
import sklearn
from sklearn.linear_model import LogisticRegression

OUT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data", "probe", "logistic.json")


def objective_gradient(x, y, coef, intercept, l2, multinomial):
    """Gradient of hlip's objective at (coef, intercept): its largest magnitude."""
    n = x.shape[0]
    if not multinomial:
        z = x @ coef[0] + intercept[0]
        p = 1.0 / (1.0 + np.exp(-z))
        gw = x.T @ (p - y) / n + l2 * coef[0]
        gb = np.sum(p - y) / n
        return float(max(np.abs(gw).max(), abs(gb)))
    z = x @ coef.T + intercept
    z -= z.max(axis=1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(axis=1, keepdims=True)
    onehot = np.eye(coef.shape[0])[y]
    gw = (p - onehot).T @ x / n + l2 * coef
    gb = (p - onehot).sum(axis=0) / n + intercept.sum()
    return float(max(np.abs(gw).max(), np.abs(gb).max()))


def fit(name, x, y, x_test, l2s, multinomial):
    cases = []
    for l2 in l2s:
        c = 1.0 / (l2 * x.shape[0])
        model = LogisticRegression(C=c, solver="newton-cg", tol=1e-10, max_iter=10000,
                                   multi_class="multinomial" if multinomial else "auto")
        model.fit(x, y)
        coef = model.coef_.astype(np.float64)
        intercept = model.intercept_.astype(np.float64)
        if multinomial:
            intercept = intercept - intercept.mean()
        cases.append({
            "id": f"{name}_l2_{l2:g}",
            "multinomial": multinomial,
            "l2": l2,
            "sklearn_C": c,
            "x": x.tolist(),
            "y": [int(v) for v in y],
            "x_test": x_test.tolist(),
            "coef": coef.tolist(),
            "intercept": intercept.tolist(),
            "proba_train": model.predict_proba(x).tolist(),
            "proba_test": model.predict_proba(x_test).tolist(),
            "gradient_max": objective_gradient(x, np.asarray(y, dtype=np.float64) if not multinomial else y,
                                               coef, intercept, l2, multinomial),
        })
    return cases


def main():
    rng = np.random.RandomState(7)
    # Binary, overlapping: two Gaussians 1.5 apart in 3-D.
    n = 40
    y = np.array([0] * 20 + [1] * 20)
    x = rng.normal(size=(n, 3)) + np.outer(y, [1.5, -0.5, 0.0])
    x_test = rng.normal(size=(6, 3))
    cases = fit("binary_overlap", x, y, x_test, [1e-3, 1e-1, 1.0], False)
    # Binary, separable by the first feature (margin 1): finite only through the penalty.
    y = np.array([0, 1] * 10)
    x = rng.normal(size=(20, 2))
    x[:, 0] = np.where(y == 1, 0.5 + np.abs(x[:, 0]), -0.5 - np.abs(x[:, 0]))
    x_test = rng.normal(size=(4, 2))
    cases += fit("binary_separable", x, y, x_test, [1e-2, 1e-1], False)
    # Three classes around three centres in 4-D.
    centres = np.array([[2.0, 0, 0, 0], [0, 2.0, 0, 0], [0, 0, 2.0, 0]])
    y = np.repeat([0, 1, 2], 15)
    x = centres[y] + rng.normal(size=(45, 4))
    x_test = rng.normal(size=(5, 4))
    cases += fit("multinomial_3", x, y, x_test, [1e-3, 1e-1], True)
    out = {
        "generator": "tests/ref/make_probe_ref.py",
        "sklearn": sklearn.__version__,
        "numpy": np.__version__,
        "objective": "(1/n) sum log-loss + (l2/2) ||W||^2, intercepts unpenalised; sklearn C = 1 / (l2 n)",
        "cases": cases,
    }
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")
    for case in cases:
        print(case["id"], "gradient_max", case["gradient_max"])


if __name__ == "__main__":
    main()
