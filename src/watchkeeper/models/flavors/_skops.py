"""Which types a skops file may contain, and the checks on the trees it rebuilds.

skops rebuilds objects from a JSON schema without unpickling and refuses every type outside its
own default trusted set (Python primitives and containers, numpy/scipy ufuncs and dtypes, the
public scikit-learn estimators and a few of their internals) unless the caller names it.
watchkeeper trusts, on top of that set, the named types in :data:`AUTO_TRUSTED` and nothing
else: never a module prefix, never a function. Any other type must be named by the user
(``--trust TYPE``, ``trusted_types=[...]``); what they named is recorded in the package manifest.

Two of the named types, scikit-learn's ``Tree`` and ``TreePredictor``, hold raw node indices that
scikit-learn follows without bounds checks, which is why skops does not trust them by default.
watchkeeper trusts them only after :func:`check_trees` has checked every index of every tree in
the loaded model.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

from watchkeeper.errors import Detail, InvalidInput, UnreadableModel, UntrustedTypes

TREE = "sklearn.tree._tree.Tree"
TREE_PREDICTOR = "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor"

# Each entry is a class that only holds data; none runs code it was given.
AUTO_TRUSTED: frozenset[str] = frozenset(
    {
        "numpy.dtype",  # rebuilt from an empty array stored without pickle
        "sklearn.calibration._CalibratedClassifier",
        "sklearn.calibration._SigmoidCalibration",
        "sklearn.compose._column_transformer.make_column_selector",
        "sklearn.neural_network._stochastic_optimizers.AdamOptimizer",
        "sklearn.neural_network._stochastic_optimizers.SGDOptimizer",
        "sklearn.utils._bunch.Bunch",
        TREE,  # indices checked by check_trees
        TREE_PREDICTOR,  # indices checked by check_trees
    }
)
_TYPE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)+")
_MAX_NODES_VISITED = 1_000_000


@functools.cache
def estimator_type_names() -> frozenset[str]:
    """The concrete public scikit-learn estimator classes, by qualified name."""
    from sklearn.utils import all_estimators

    return frozenset(f"{klass.__module__}.{klass.__qualname__}" for _, klass in all_estimators())


def is_auto_trusted(type_name: str) -> bool:
    """Whether a type skops reports as untrusted is trusted without the user naming it."""
    return type_name in AUTO_TRUSTED or type_name in estimator_type_names()


def check_type_names(names: Iterable[str] | None) -> tuple[str, ...]:
    """The names the user trusts, sorted and deduplicated; each must be a full dotted name."""
    out: set[str] = set()
    for name in names or ():
        if not isinstance(name, str) or not _TYPE_NAME.fullmatch(name):
            raise InvalidInput(
                f"trusted type {name!r} is not a full dotted name such as "
                "'mypackage.module.MyTransformer' (prefixes and wildcards are not accepted)",
                details=[Detail(field="trusted_types", problem=f"{name!r} is not a type name")],
            )
        out.add(name)
    return tuple(sorted(out))


def untrusted_types(data: bytes, source: str) -> list[str]:
    """Types in a skops file that neither skops nor watchkeeper trusts by default."""
    return [t for t in _skops_untrusted(data, source) if not is_auto_trusted(t)]


def named_types_needed(data: bytes, trusted: Iterable[str] | None, source: str) -> list[str]:
    """The named types the file needs; raises ``UntrustedTypes`` naming any type not trusted."""
    needed = untrusted_types(data, source)
    _refuse_unnamed(needed, trusted, source)
    return needed


def loads(data: bytes, trusted: Iterable[str] | None, source: str) -> Any:
    """Load a skops file after the trust check; trees are checked before the model is used."""
    import skops.io

    found = _skops_untrusted(data, source)
    _refuse_unnamed([t for t in found if not is_auto_trusted(t)], trusted, source)
    model = skops.io.loads(data, trusted=found)  # every one is auto-trusted or named
    check_trees(model, source)
    return model


def _skops_untrusted(data: bytes, source: str) -> list[str]:
    import skops.io

    try:
        return sorted(skops.io.get_untrusted_types(data=data))
    except Exception as exc:  # translated at this boundary
        raise UnreadableModel(
            f"cannot read {source} as a skops model file: {type(exc).__name__}: {exc}"
        ) from exc


def _refuse_unnamed(needed: list[str], trusted: Iterable[str] | None, source: str) -> None:
    allowed = set(check_type_names(trusted))
    refused = [t for t in needed if t not in allowed]
    if refused:
        raise UntrustedTypes(
            f"{source} contains types that are not trusted: {', '.join(refused)}; "
            "trust them only if you trust whoever wrote the file "
            "(watchkeeper models register --trust TYPE, or trusted_types=[...])",
            details=[Detail(field=t, problem="type not trusted") for t in refused],
        )


# --- tree checks ----------------------------------------------------------------------------


def check_trees(model: Any, source: str) -> None:
    """Refuse a model whose decision trees point outside themselves.

    Every inner node's children must come after it and inside the tree (so a walk ends), and
    its feature must be a column the estimator takes; a categorical split must name a bitset
    that exists and a feature that is categorical.
    """
    from sklearn.ensemble._hist_gradient_boosting.predictor import TreePredictor
    from sklearn.tree._tree import Tree

    for obj in _reachable(model):
        if isinstance(obj, Tree):
            _check_tree(obj, source)
        elif isinstance(obj, TreePredictor):
            _check_predictor_shape(obj, source)
        features = getattr(obj, "n_features_in_", None)
        tree = getattr(obj, "tree_", None)
        if isinstance(tree, Tree) and features is not None and tree.n_features != features:
            _bad(source, f"a tree reads {tree.n_features} features, its estimator {features}")
        predictors = getattr(obj, "_predictors", None)
        if isinstance(predictors, list):
            _check_boosting(obj, predictors, source)


def _bad(source: str, problem: str) -> None:
    raise UnreadableModel(f"{source} holds a malformed tree: {problem}")


def _check_tree(tree: Any, source: str) -> None:
    count = int(tree.node_count)
    if not 0 < count <= int(tree.capacity):
        _bad(source, f"node_count {count} does not match the {tree.capacity} nodes stored")
    left = np.asarray(tree.children_left, dtype=np.int64)
    right = np.asarray(tree.children_right, dtype=np.int64)
    feature = np.asarray(tree.feature, dtype=np.int64)
    index = np.arange(count)
    leaf = left == -1
    inner = _children_ok(left, right, index, count) & (feature >= 0)
    inner &= feature < int(tree.n_features)
    ok = np.where(leaf, right == -1, inner)
    if not ok.all():
        _bad(source, f"node {int(np.argmin(ok))} points outside its tree")


def _children_ok(left: Any, right: Any, index: Any, count: int) -> Any:
    return (left > index) & (left < count) & (right > index) & (right < count)


def _check_predictor_shape(predictor: Any, source: str) -> None:
    from sklearn.ensemble._hist_gradient_boosting.common import (
        PREDICTOR_RECORD_DTYPE,
        X_BITSET_INNER_DTYPE,
    )

    nodes = getattr(predictor, "nodes", None)
    bitsets = getattr(predictor, "raw_left_cat_bitsets", None)
    if not isinstance(nodes, np.ndarray) or nodes.dtype != PREDICTOR_RECORD_DTYPE:
        _bad(source, "a boosting tree's nodes are not a node array")
    elif nodes.ndim != 1 or nodes.size == 0:
        _bad(source, "a boosting tree has no nodes")
    if not isinstance(bitsets, np.ndarray) or bitsets.dtype != X_BITSET_INNER_DTYPE:
        _bad(source, "a boosting tree's category bitsets are not a bitset array")
    elif bitsets.ndim != 2 or bitsets.shape[1] != 8:
        _bad(source, f"a boosting tree's category bitsets have shape {bitsets.shape}")


def _check_boosting(estimator: Any, predictors: list[Any], source: str) -> None:
    binner = getattr(estimator, "_bin_mapper", None)
    categorical = np.asarray(getattr(binner, "is_categorical_", None))
    features = int(getattr(estimator, "n_features_in_", 0))
    if features < 1 or categorical.ndim != 1 or categorical.size != features:
        _bad(source, "the binner's feature count differs from the estimator's")
    for predictor in (p for row in predictors for p in row):
        _check_predictor_shape(predictor, source)
        nodes = predictor.nodes
        count = nodes.size
        index = np.arange(count)
        left, right = nodes["left"].astype(np.int64), nodes["right"].astype(np.int64)
        feature = nodes["feature_idx"].astype(np.int64)
        inner = _children_ok(left, right, index, count) & (feature >= 0) & (feature < features)
        split_on_category = nodes["is_categorical"].astype(bool)
        in_range = np.clip(feature, 0, features - 1)
        bitset = nodes["bitset_idx"].astype(np.int64)
        category_ok = (bitset < len(predictor.raw_left_cat_bitsets)) & (categorical[in_range] != 0)
        inner &= ~split_on_category | category_ok
        ok = nodes["is_leaf"].astype(bool) | inner
        if not ok.all():
            _bad(source, f"boosting node {int(np.argmin(ok))} points outside its tree")


def _reachable(root: Any) -> Iterator[Any]:
    """Every object reachable from ``root`` through containers and instance attributes."""
    seen: set[int] = set()
    stack = [root]
    while stack:
        obj = stack.pop()
        if id(obj) in seen or isinstance(obj, (str, bytes, int, float, bool, type(None), type)):
            continue
        seen.add(id(obj))
        if len(seen) > _MAX_NODES_VISITED:
            raise UnreadableModel("the model holds too many objects to check")
        yield obj
        if isinstance(obj, dict):
            stack.extend(obj.values())
        elif isinstance(obj, (list, tuple, set, frozenset)):
            stack.extend(obj)
        elif isinstance(obj, np.ndarray):
            if obj.dtype == object:
                stack.extend(obj.ravel().tolist())
        elif isinstance(getattr(obj, "__dict__", None), dict):
            stack.extend(vars(obj).values())


__all__ = [
    "AUTO_TRUSTED",
    "check_trees",
    "check_type_names",
    "estimator_type_names",
    "is_auto_trusted",
    "loads",
    "named_types_needed",
    "untrusted_types",
]
