"""``import skbert`` stays light: no torch, no transformers until a model is used,
and polars (optional) only when the input is a polars object."""

from __future__ import annotations

import json

import pytest
from helpers import run_python

CHILD = """
import json

import pytest
import sys

import skbert
from sklearn.base import clone
from skbert._core.inputs import check_texts

after_import = sorted(sys.modules)
estimator = skbert.BertCLSVectorizer(model_name_or_path="somewhere", pooling="mean")
clone(estimator).set_params(pooling="max").get_params()
repr(estimator)
check_texts(["a list", "of texts"])
after_use = sorted(sys.modules)
print(json.dumps({"after_import": after_import, "after_use": after_use}))
"""


def heavy(modules: list[str]) -> list[str]:
    return [
        m for m in modules if m.split(".")[0] in {"torch", "transformers", "polars"}
    ]


@pytest.mark.slow
def test_import_and_construction_do_not_import_torch_transformers_or_polars(tmp_path):
    seen = json.loads(run_python(CHILD, cwd=tmp_path).strip().splitlines()[-1])

    assert "skbert" in seen["after_import"]
    assert heavy(seen["after_import"]) == []
    assert heavy(seen["after_use"]) == []
