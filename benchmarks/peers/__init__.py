"""The peers of the benchmark suite: one module per library, each with ``build(workload)``.

``build`` returns a :class:`Runner` or raises :class:`Skip` (library missing, or the workload's
layers are not offered by it). Every peer trains the same layers on the same data with the same
loss (softmax cross-entropy on logits) and optimizer (Adam, lr 1e-3, b1 0.9, b2 0.999, eps 1e-8).
"""

from __future__ import annotations

import importlib

from peers.spec import Runner, Skip, Workload  # noqa: F401

PEERS = {  # module name -> row label
    "jaxnet_fit": "jaxnet.fit",
    "jaxnet_epoch": "jaxnet jit(make_epoch)",
    "hand_scan": "hand-written lax.scan epoch",
    "hand_jit": "hand-written jax.jit step loop",
    "flax_linen": "Flax Linen + optax",
    "flax_nnx": "Flax NNX + optax",
    "equinox": "Equinox + optax",
    "haiku": "Haiku + optax",
    "stax": "jax.example_libraries.stax + optax",
    "keras": "Keras 3 (JAX backend)",
    "sklearn": "scikit-learn MLPClassifier",
    "torch": "PyTorch eager",
}


def build(peer: str, workload: Workload) -> Runner:
    """The peer's runner for ``workload``; :class:`Skip` when it cannot run."""
    if peer not in PEERS:
        raise Skip(f"unknown peer {peer!r}")
    try:
        module = importlib.import_module(f"peers.{peer}")
    except ImportError as error:  # the library itself is missing
        raise Skip(f"not installed ({error.name})") from error
    return module.build(workload)
