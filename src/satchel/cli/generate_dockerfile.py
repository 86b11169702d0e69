"""``satchel generate-dockerfile -m MODEL -o DIR``: a self-contained image build context."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from satchel.cli._load_options import add_load_options, load_options


def add_common(p: argparse.ArgumentParser) -> None:
    """Options shared with ``build-docker``."""
    p.add_argument("-m", "--model", required=True, help="model directory or models:/ URI")
    p.add_argument("--base-image", default=None, metavar="IMAGE",
                   help="image to build on (default: python:<model's X.Y>-slim)")
    p.add_argument("--platform", default=None, metavar="PLATFORM",
                   help="linux/amd64 or linux/arm64: the wheels gathered and the build "
                   "(default: the host's, or the engine's for build-docker)")
    p.add_argument("--no-parquet", dest="parquet", action="store_false",
                   help="leave pyarrow out (~155 MB smaller; Parquet request bodies are "
                   "then refused)")
    # The image's own load opt-ins, baked in as SATCHEL_* variables its serve reads.
    add_load_options(p)


def add_parser(sub: Any) -> None:
    """Register the subcommand."""
    p = sub.add_parser(
        "generate-dockerfile", help="write a Dockerfile and build context for a model",
        description="Write DIR/Dockerfile with everything the build needs beside it (model, "
        "pinned requirements, wheels for the image's platform, satchel's own wheel), so "
        "`docker build --network none DIR` works.")
    add_common(p)
    p.add_argument("-o", "--output", required=True, metavar="DIR", help="context directory")
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty DIR")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Write the context; print the Dockerfile's path."""
    from satchel.serving.images.docker import generate_dockerfile

    def say(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    path = generate_dockerfile(args.model, args.output, base_image=args.base_image,
                               platform=args.platform, parquet=args.parquet,
                               overwrite=args.overwrite, progress=say,
                               load_options=load_options(args))
    print(path)
    return 0
