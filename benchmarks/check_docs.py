"""Check that the figures the README and docs state are the ones the examples print today.

    python benchmarks/check_docs.py [--only NAME,...] [--list]

Each claim runs one example (in a temporary ``--out``), reads a figure from what it prints, and
checks that the documents quote that figure. Prints one line per claim (``ok`` or what differs)
and exits 1 if any differs. The examples are seeded, so on one machine they print the same
figures every run; a claim that differs means a document is stale (or the code changed a result:
re-run the example, then update the document in the same commit). Takes a few minutes.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parent.parent


class Claim(NamedTuple):
    name: str
    command: list[str]  # run from the repository root; "{out}" becomes a temporary folder
    printed: str  # regular expression with one group: the figure in the command's output
    quoted: list[tuple[str, str]]  # (document, text with "{}" where the figure goes)


CLAIMS = [
    Claim(
        "demo",
        ["examples/digits_mlp.py", "--out", "{out}", "--quiet"],
        r"test accuracy (\d\.\d{3})\d",
        [("README.md", "test accuracy {}")],
    ),
    Claim(
        "demo verdict",
        ["examples/digits_mlp.py", "--out", "{out}", "--quiet"],
        r"(verdict: healthy)",
        [("README.md", "{}")],
    ),
    Claim(
        "cnn",
        ["examples/cnn_digits.py", "--out", "{out}"],
        r"CNN test accuracy (\d\.\d{3})\d",
        [("docs/architectures.md", "test accuracy {}")],
    ),
    Claim(
        "rnn",
        ["examples/rnn_sequences.py"],
        r"best RNN RMSE (\d\.\d{3})\d",
        [("docs/architectures.md", "{}")],
    ),
    Claim(
        "autoencoder",
        ["examples/autoencoder_anomaly.py"],
        r"\s+mean\s+(\d\.\d{3})",
        [("docs/architectures.md", "mean {}")],
    ),
    Claim(
        "gan",
        ["examples/gan_mixture.py", "--out", "{out}"],
        r"(\d)/8 modes covered",
        [("docs/architectures.md", "{} of 8")],
    ),
    *(
        Claim(
            f"vanishing lab: {model}",
            ["examples/vanishing_gradient_lab.py", "--out", "{out}"],
            rf"^(\| {re.escape(model)} \|.*\|)$",  # the Markdown row it prints
            [("docs/diagnostics.md", "{}")],
        )
        for model in ("sigmoid + glorot", "relu + he", "selu + lecun", "relu + he + BatchNorm")
    ),
    *(
        Claim(
            f"overfitting: {variant}",
            ["examples/overfitting.py", "--out", "{out}"],
            rf"^(\| {re.escape(variant)} \|.*\|)$",
            [("docs/regularization.md", "{}")],
        )
        for variant in (
            "baseline",
            "dropout 0.5",
            "L2 1e-2",
            "batch norm",
            "early stopping",
            "dropout + L2 + early stop",
        )  # fmt: skip
    ),
    Claim(
        "diagnose finding",
        [
            "-m",
            "jaxnet",
            "diagnose",
            "--dataset",
            "digits",
            "--activation",
            "sigmoid",
            "--hidden",
            "64",
            "64",
            "64",
            "64",
            "64",
            "64",
            "--init",
            "normal(1.0)",
        ],  # fmt: skip
        r"(\[warning\] vanishing: dense_0 \.\.\. dense_6 \(4 layers; sigmoid \+ normal\(1\.0\)\): "
        r"the gradient norm falls to 10\^-\d\.\d)",
        [("docs/cli.md", "{}")],
    ),
]


def run(claim: Claim, cache: dict) -> str:
    key = tuple(claim.command)
    if key not in cache:
        with tempfile.TemporaryDirectory() as out:
            command = [sys.executable, *(part.format(out=out) for part in claim.command)]
            # the examples' compilation cache (the demo turns it on) stays in the temporary folder
            env = dict(os.environ, JAXNET_CACHE_DIR=os.path.join(out, "xla"))
            result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True,
                                    timeout=900)  # fmt: skip
        cache[key] = result.stdout + result.stderr
        if result.returncode:
            raise RuntimeError(f"{' '.join(claim.command)} failed:\n{cache[key][-2000:]}")
    return cache[key]


def check(claim: Claim, cache: dict) -> str | None:
    """``None`` if every document quotes the printed figure, else what differs."""
    output = run(claim, cache)
    found = re.search(claim.printed, output, re.MULTILINE)
    if found is None:
        return f"the output no longer matches {claim.printed!r}"
    figure, problems = found.group(1), []
    for document, text in claim.quoted:
        expected = text.format(figure) if "{}" in text else text
        if expected not in (ROOT / document).read_text():
            problems.append(f"{document} does not say {expected!r}")
    return "; ".join(problems) or None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", default=None, help="comma-separated claim names")
    parser.add_argument("--list", action="store_true")
    args = parser.parse_args(argv)
    claims = CLAIMS if args.only is None else [c for c in CLAIMS if c.name in args.only.split(",")]
    if args.list:
        print("\n".join(f"{c.name}: {' '.join(c.command)}" for c in claims))
        return 0
    cache, failed = {}, 0
    for claim in claims:
        problem = check(claim, cache)
        failed += problem is not None
        print(f"{claim.name}: {'ok' if problem is None else problem}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
