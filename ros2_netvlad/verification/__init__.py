"""Geometric verification of loop-closure candidates: local features, their storage codec, and
the verifiers that turn two images' features into evidence (registry.py lists them)."""
