"""Maps: the on-disk database (faiss index + SQLite entries + manifest, atomic saves) and building
a map from sources with a model (``building``). Imports sources and model."""
