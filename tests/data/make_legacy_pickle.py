"""Write ``legacy-0.1.0.pkl`` with skbert 0.1.0 (run from a checkout of 01b62fe)."""

from __future__ import annotations

import pickle
import sys


def main(target: str) -> None:
    sys.path.insert(0, "tests")
    from helpers import build_tiny_bert, vectorizer

    folder = build_tiny_bert("/tmp/legacy-model/bert")
    fitted = vectorizer(folder, pooling="mean", persist="weights").fit(["a"])
    with open(target, "wb") as handle:
        pickle.dump(fitted, handle)


if __name__ == "__main__":
    main(sys.argv[1])
