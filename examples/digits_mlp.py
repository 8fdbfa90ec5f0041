"""The main demo: the textbook multiclass MLP (2 x 100 ReLU, He init, softmax, Adam) on digits.

    python examples/digits_mlp.py [--epochs 30] [--out out/demo]

The same program as ``jaxnet demo`` (it lives in ``jaxnet/demo.py``): scikit-learn's bundled 8x8
digits, per-epoch progress, the test accuracy, a per-layer gradient-health report, and the
history, metrics and plots under ``--out``.
"""

from jaxnet.demo import main

if __name__ == "__main__":
    main()
