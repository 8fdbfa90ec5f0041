"""``python -m jaxnet.datasets [DATA_DIR]``: the downloadable sets, their files, and the cache.

For each set in :data:`~jaxnet.datasets.REGISTRY`: the download size, whether its ``.npy`` cache
is ready, and each file's first URL, pinned SHA-256 and the exact path where it goes (the place to
put it by hand on a machine without network access). Nothing is downloaded.
"""

from __future__ import annotations

import sys

from jaxnet.datasets.download import cache_dir
from jaxnet.datasets.standard import REGISTRY, cached_meta


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    root = cache_dir(argv[0] if argv else None)
    print(f"cache: {root}")
    for name, source in REGISTRY.items():
        size = sum(remote.size for remote in source.files)
        ready = "ready" if cached_meta(root / name, source) else "not downloaded"
        print(f"\n{name}: {len(source.files)} file(s), {size / 1e6:.1f} MB, {ready}")
        for remote in source.files:
            print(f"  {remote.urls[0]}\n    sha256 {remote.sha256}")
            print(f"    -> {root / name / remote.filename}")


if __name__ == "__main__":
    main()
