"""The Ray Data recipe of ``docs/scaling.md`` on a local two-CPU Ray.

Ray comes with the ``test`` extra (``skbert[ray]``); the test is skipped where
it is not installed. Oracle: the same fitted vectorizer's in-process
``transform``; each actor also reports how many times its process loaded a model.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from helpers import vectorizer

ray = pytest.importorskip("ray")
pytest.importorskip("ray.data")

# Ray Data's own deprecations (its config names, pandas' ``inplace``): not ours.
pytestmark = [
    pytest.mark.slow,  # Ray starts its own processes
    pytest.mark.filterwarnings("ignore:.*deprecated:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:The inplace keyword"),
]


def vectorize_class():
    """The recipe's callable class, counting model loads in its actor process.

    Built inside a function so that Ray pickles it by value and the actors need
    not import this test module.
    """

    class Vectorize:
        def __init__(self, estimator):
            import collections

            import skbert._encoding.models
            import skbert._model.handle

            self.estimator = estimator  # unpickled once per actor
            self.loads = collections.Counter()
            load_folder = skbert._encoding.models.load_folder

            def counting_load_folder(*args, **kwargs):
                self.loads["model"] += 1
                return load_folder(*args, **kwargs)

            # a fit reads a folder in models, a fitted handle its checkpoint
            # in handle (ModelHandle.read_checked)
            skbert._encoding.models.load_folder = counting_load_folder
            skbert._model.handle.load_folder = counting_load_folder

        def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
            vectors = self.estimator.transform(batch["text"])
            n = len(vectors)
            return {
                "id": batch["id"],
                "vector": vectors,
                "pid": np.full(n, os.getpid()),
                "loads": np.full(n, self.loads["model"]),
            }

    return Vectorize


@pytest.fixture(scope="module")
def local_ray():
    with pytest.MonkeyPatch.context() as patch:
        # No usage report leaves the test machine (it has no internet anyway).
        patch.setenv("RAY_USAGE_STATS_ENABLED", "0")
        ray.init(
            num_cpus=2,
            include_dashboard=False,
            log_to_driver=False,
            runtime_env={"env_vars": {"HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}},
        )
        yield ray
        ray.shutdown()


def test_map_batches_with_actors_matches_in_process(local_ray, tiny_model_dir, texts):
    many = [f"{text} {i}" for i in range(10) for text in texts]
    fitted = vectorizer(tiny_model_dir, persist="weights").fit(many)
    rows = [{"id": i, "text": text} for i, text in enumerate(many)]

    dataset = ray.data.from_items(rows, override_num_blocks=6).map_batches(
        vectorize_class(),
        fn_constructor_kwargs={"estimator": fitted},
        batch_size=16,
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=2),
        num_cpus=1,
    )
    result = dataset.to_pandas().sort_values("id")

    np.testing.assert_array_equal(result["id"], np.arange(len(many)))
    np.testing.assert_allclose(
        np.stack(result["vector"]), fitted.transform(many), rtol=0, atol=1e-6
    )
    loads = result.groupby("pid")["loads"].max()
    assert (loads == 1).all(), loads  # one model load per actor process
