"""scikit-learn's bundled data sets (shipped with the package, nothing downloaded)."""

from __future__ import annotations

import pandas as pd

from dlpipe.collect import Collected

CLASSIFICATION_SETS = {"iris", "wine", "breast_cancer", "digits"}


def read_builtin(name: str) -> Collected:
    """The set as a table with a `target` column; class targets carry their names, not codes."""
    from sklearn import datasets

    bunch = getattr(datasets, f"load_{name}")(as_frame=True)
    frame: pd.DataFrame = bunch.frame.copy()
    if name in CLASSIFICATION_SETS:
        names = [str(n) for n in getattr(bunch, "target_names", [])]
        if names and name != "digits":
            frame["target"] = frame["target"].map(dict(enumerate(names)))
    return Collected(frame, f"scikit-learn's {name} data set", notes=[f"builtin:{name}, {len(frame)} rows"])
