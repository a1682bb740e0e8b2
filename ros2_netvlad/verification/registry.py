"""The verifiers, by name: what ``build_map --local-features``, ``localizer.verification`` and a
map's manifest choose from. A verifier extracts local features from an image, prepares them for
matching once per image, turns two prepared images into ``Evidence`` (inliers), and names the
codec its features are stored with.

Adding one (e.g. a learned matcher) is one file: a class with the four members of ``Verifier``
and a ``register_verifier("name", factory)`` call where it is defined or imported."""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Protocol

import numpy as np

from ros2_netvlad.errors import InputError
from ros2_netvlad.verification.epipolar import OpenCVVerifier
from ros2_netvlad.verification.features import Codec, FeatureSettings, LocalFeatures


class Verifier(Protocol):
    codec: Codec

    def extract(self, rgb: np.ndarray) -> LocalFeatures:
        """One H×W×3 uint8 RGB image → its local features."""

    def prepare(self, features: LocalFeatures) -> Any:
        """Once per image: whatever ``evidence`` compares (e.g. float tensors)."""

    def evidence(self, query: Any, candidate: Any, needed: int) -> Any:
        """An object with ``inliers`` (and ``matches``); ``needed`` inliers verify a candidate,
        so a verifier may stop early below it."""


_VERIFIERS: dict[str, Callable[[FeatureSettings], Verifier]] = {
    "sift": lambda settings: OpenCVVerifier(settings, binary=False),
    "orb": lambda settings: OpenCVVerifier(settings, binary=True),
}


def register_verifier(name: str, factory: Callable[[FeatureSettings], Verifier]) -> None:
    """Makes ``name`` a choice of build_map --local-features and localizer.verification."""
    if name in ("auto", "none") or not name.isidentifier():
        raise InputError(f"verifier name {name!r}: use an identifier other than auto and none")
    _VERIFIERS[name] = factory


def verifier_names() -> tuple[str, ...]:
    return tuple(_VERIFIERS)


def make_verifier(settings: FeatureSettings) -> Verifier:
    """The verifier that makes (and matches) features of ``settings.method``."""
    try:
        factory = _VERIFIERS[settings.method]
    except KeyError:
        raise InputError(
            f"local feature method {settings.method!r} is not registered; known: "
            f"{', '.join(_VERIFIERS)}"
        ) from None
    return factory(settings)


def with_codec(settings: FeatureSettings) -> FeatureSettings:
    """``settings`` with its verifier's storage codec (what a map records)."""
    return dataclasses.replace(settings, codec=make_verifier(settings).codec)
