"""Embedding ensembles: `a+b` concatenates the models' weighted unit vectors, so the store's
cosine is the weighted mean of the models' cosines; specs that are not models are refused."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from shared.config import Settings
from workers.rag.embeddings import build_embedder
from workers.rag.ensemble import EnsembleEmbedder, ensemble_name, parse_ensemble


class Fixed:
    """A model that maps known texts to given vectors (queries get their own table)."""

    def __init__(
        self, name: str, passages: dict[str, list[float]], queries: dict[str, list[float]]
    ):
        self.name, self.dim = name, len(next(iter(passages.values())))
        self._tables = {False: passages, True: queries}
        self.closed = False

    async def embed(self, texts: Sequence[str], *, query: bool = False) -> list[list[float]]:
        return [self._tables[query][t] for t in texts]

    async def aclose(self) -> None:
        self.closed = True


def _unit(v: list[float]) -> np.ndarray:
    a = np.asarray(v, dtype=np.float64)
    return a / np.linalg.norm(a)


@pytest.mark.parametrize("weights", [(1.0, 1.0), (1.0, 3.0)])
async def test_cosine_of_the_ensemble_is_the_weighted_mean_of_the_models(
    weights: tuple[float, float],
) -> None:
    """q·d of the ensemble's vectors = (a·cos₁ + b·cos₂)/(a+b), vectors of any length."""
    one = Fixed("one", {"d": [3.0, 4.0, 0.0]}, {"q": [1.0, 0.0, 0.0]})
    two = Fixed("two", {"d": [0.0, 1.0]}, {"q": [1.0, 1.0]})
    ensemble = EnsembleEmbedder([one, two], weights)
    [q] = await ensemble.embed(["q"], query=True)
    [d] = await ensemble.embed(["d"])
    cos1 = float(_unit([1, 0, 0]) @ _unit([3, 4, 0]))
    cos2 = float(_unit([1, 1]) @ _unit([0, 1]))
    a, b = weights
    assert ensemble.dim == 5
    assert float(np.dot(q, d)) == pytest.approx((a * cos1 + b * cos2) / (a + b), abs=1e-6)
    assert float(np.linalg.norm(q)) == pytest.approx(1.0, abs=1e-6)
    await ensemble.aclose()
    assert one.closed
    assert two.closed


def test_names_and_specs_round_trip() -> None:
    """Equal weights name `a+b`; others `a*2+b*1`, and that name parses back to the weights."""
    assert ensemble_name(["a", "b"], [1, 1]) == "a+b"
    assert parse_ensemble("a+b") == [("a", 1.0), ("b", 1.0)]
    assert parse_ensemble(ensemble_name(["a", "b"], [2, 1])) == [("a", 2.0), ("b", 1.0)]
    assert parse_ensemble("all-minilm-l6-v2") == [("all-minilm-l6-v2", 1.0)]


@pytest.mark.parametrize("spec", ["a*0+b", "a*x+b", "a++b", "a*-1+b", "a*nan+b"])
def test_bad_weights_are_refused_with_the_spec_named(spec: str) -> None:
    with pytest.raises(ValueError, match="embedding model"):
        parse_ensemble(spec)


async def test_an_unknown_model_in_an_ensemble_is_refused_before_anything_loads() -> None:
    """A name that is not embedded fails at start-up, listing the models there are."""
    settings = Settings(_env_file=None, embeddings_model="all-minilm-l6-v2+no-such-model")
    with pytest.raises(ValueError, match=r"no-such-model.*multilingual-e5-small"):
        await build_embedder(settings, executor=None)  # type: ignore[arg-type]


def test_each_ensemble_gets_its_own_collection() -> None:
    """Vectors of two ensembles (or of a model and an ensemble) never share a collection."""
    names = {
        Settings(_env_file=None, embeddings_model=m).collection_name
        for m in (
            "all-minilm-l6-v2",
            "all-minilm-l6-v2+multilingual-e5-small",
            "all-minilm-l6-v2*2+multilingual-e5-small",
        )
    }
    assert len(names) == 3
