"""Write tests/data/legacy-0.1.0.pkl with skbert 0.1.0 (commit 01b62fe)."""

import pickle
import sys

sys.path.insert(0, "tests")
from helpers import build_tiny_bert, vectorizer

folder = build_tiny_bert("/tmp/legacy-model/bert")
fitted = vectorizer(folder, pooling="mean", persist="weights").fit(["a"])
blob = pickle.dumps(fitted)
open(sys.argv[1], "wb").write(blob)
print(len(blob))
