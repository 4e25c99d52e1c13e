"""CLI commands; each module exposes ``register(subparsers)`` and sets ``handler``."""
