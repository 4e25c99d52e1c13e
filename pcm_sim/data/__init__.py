"""Data sets and input encodings: Fashion-MNIST, Bernoulli rate coding, Bach chorales.

Importing this package does not import music21; only building the chorale cache does.
"""

from pcm_sim.data.chorales import batch_sequences, frame_nll, load_chorales
from pcm_sim.data.encoding import bernoulli_rate_code
from pcm_sim.data.fashion_mnist import load_fashion_mnist, read_idx

__all__ = [
    "batch_sequences",
    "bernoulli_rate_code",
    "frame_nll",
    "load_chorales",
    "load_fashion_mnist",
    "read_idx",
]
