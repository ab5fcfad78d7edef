"""LoRA adapter types (LoRA/DoRA, LoHa, LoKr, GLoRA, OFT, full diffs): which tensors each needs, and the weight
shape it makes, so that `ltx_core.lora.mapping` can refuse incomplete layers and LoRAs made for another model size
before the host's weight adapters see them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch


def _shape(t: torch.Tensor) -> tuple[int, ...]:
    return tuple(t.shape)


def flat2(shape: Sequence[int]) -> tuple[int, int]:
    """A weight shape as (out, in), kernel dimensions folded into `in`: how a weight change is compared."""
    return (shape[0], math.prod(shape[1:]) if len(shape) > 1 else 1)


def delta_shape(kind: str, tensors: dict[str, torch.Tensor]) -> tuple[int, int] | None:
    """(out, in) of the weight a layer's adapter produces, where it can be read off the tensors."""
    if kind in ("lora", "dora") and "reshape" not in tensors and "mid" not in tensors:
        return tensors["up"].shape[0], flat2(_shape(tensors["down"]))[1]
    if kind == "loha" and "t1" not in tensors:
        return tensors["w1_a"].shape[0], flat2(_shape(tensors["w1_b"]))[1]
    if kind == "lokr" and "t2" not in tensors:
        w1 = _shape(tensors["w1"]) if "w1" in tensors else (tensors["w1_a"].shape[0], tensors["w1_b"].shape[1])
        w2 = _shape(tensors["w2"]) if "w2" in tensors else (tensors["w2_a"].shape[0],
                                                            flat2(_shape(tensors["w2_b"]))[1])
        return w1[0] * w2[0], w1[1] * flat2(w2)[1]
    if kind in ("diff", "set") and "weight" in tensors:
        return flat2(_shape(tensors["weight"]))
    return None


_REQUIRED_ROLES = {"lora": (("up",), ("down",)), "loha": (("w1_a",), ("w1_b",), ("w2_a",), ("w2_b",)),
                   "lokr": (("w1", "w1_a"), ("w2", "w2_a")), "glora": (("a1",), ("a2",), ("b1",), ("b2",)),
                   "oft": (("blocks",),)}
"""Per adapter type: the roles it needs, each as alternatives (LoKr takes a whole w1 or its factors w1_a/w1_b)."""


def layer_kind(roles: dict[str, tuple[str, str]]) -> str | None:
    """The adapter type of a layer's roles (role → (kind, key)); None when they are only `.alpha` / `.dora_scale`."""
    kinds = {kind for kind, _ in roles.values()} - {"any"}
    for kind in ("lora", "loha", "lokr", "glora", "oft", "set", "diff"):
        if kind in kinds:
            return kind
    return None


def missing_roles(kind: str, roles: set[str]) -> list[str]:
    """The roles a layer of adapter type `kind` lacks (for LoKr also the missing half of a factored w1 / w2)."""
    missing = [alternatives[0] for alternatives in _REQUIRED_ROLES.get(kind, ()) if not roles & set(alternatives)]
    if kind == "lokr":
        for whole, a, b in (("w1", "w1_a", "w1_b"), ("w2", "w2_a", "w2_b")):
            if whole not in roles and a in roles and b not in roles:
                missing.append(b)
    return missing


_CHAINED_FACTORS = {"lora": (("up", "down"),), "loha": (("w1_a", "w1_b"), ("w2_a", "w2_b")),
                    "lokr": (("w1_a", "w1_b"), ("w2_a", "w2_b"))}
"""Per adapter type: factor pairs multiplied as `a @ b`, whose inner dimensions (the rank) must agree."""
_TUCKER_ROLES = {"mid", "t1", "t2"}
"""Tucker cores between the factors: their layers are left to the host's own checks."""


def unchained_factors(kind: str, tensors: dict[str, torch.Tensor]) -> list[tuple[str, str]]:
    """The factor pairs of a layer whose ranks disagree (`up` is out×4 but `down` 8×in): the host cannot multiply
    them and would leave the layer out with no more than a log line."""
    if _TUCKER_ROLES & set(tensors):
        return []
    pairs = [(a, b) for a, b in _CHAINED_FACTORS.get(kind, ())
             if a in tensors and b in tensors and (tensors[a].ndim < 2 or tensors[b].ndim < 1
                                                   or tensors[a].shape[1] != tensors[b].shape[0])]
    if kind == "loha" and not pairs:
        w1 = (tensors["w1_a"].shape[0], flat2(_shape(tensors["w1_b"]))[1])
        w2 = (tensors["w2_a"].shape[0], flat2(_shape(tensors["w2_b"]))[1])
        if w1 != w2:  # the two Hadamard factors must have the same shape
            pairs.append(("w1_a", "w2_a"))
    return pairs
