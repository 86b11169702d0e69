"""``satchel build-docker -m MODEL -t TAG``: build a serving image through the Docker engine."""

from __future__ import annotations

import argparse
import sys
from typing import Any


def add_parser(sub: Any) -> None:
    """Register the subcommand."""
    from satchel.cli.generate_dockerfile import add_common

    p = sub.add_parser(
        "build-docker", help="build a serving image for a model",
        description="Generate the build context (see generate-dockerfile) and build it with "
        "the Docker engine at DOCKER_HOST, networking disabled. Prints the image id and size.")
    add_common(p)
    p.add_argument("-t", "--tag", required=True, help="image name and tag, e.g. iris:1")
    p.add_argument("--context", default=None, metavar="DIR",
                   help="keep the build context in DIR (default: a temporary directory)")
    p.add_argument("--no-cache", dest="nocache", action="store_true",
                   help="do not reuse cached layers")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Build; progress goes to stderr, ``<image id> <tag> <size bytes>`` to stdout."""
    from satchel.cli._load_options import load_options
    from satchel.serving.images.docker import build_image

    def say(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    image = build_image(args.model, args.tag, base_image=args.base_image,
                        platform=args.platform, parquet=args.parquet, progress=say,
                        context_dir=args.context, nocache=args.nocache,
                        load_options=load_options(args))
    print(f"{image.id} {image.tag} {image.size}")
    return 0
