"""Encoders: the frozen transformer models that turn texts into feature vectors."""
