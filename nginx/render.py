"""Render nginx.conf.template from settings, for the local run, the tests and docker.

Usage: python nginx/render.py --listen 81 --static chatui/dist --conversation 127.0.0.1:8000 \
           --prefix .run/nginx > .run/nginx/nginx.conf
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

TEMPLATE = Path(__file__).with_name("nginx.conf.template")


def render(
    listen: str,
    static_root: str,
    conversation: list[str],
    prefix: str,
    mime_types: str = "/etc/nginx/mime.types",
) -> str:
    servers = "\n".join(f"        server {addr};" for addr in conversation)
    values = {
        "LISTEN": listen,
        "STATIC_ROOT": str(Path(static_root).resolve()),
        "CONVERSATION_SERVERS": servers,
        "PREFIX": str(Path(prefix).resolve()),
        "MIME_TYPES": mime_types,
    }
    return fill(TEMPLATE.read_text(), values)


def fill(template: str, values: dict[str, str]) -> str:
    """Replace ${NAME} placeholders; nginx's own $variables are left alone."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values:
            raise KeyError(f"nginx template needs a value for ${{{name}}}")
        return values[name]

    return re.sub(r"\$\{([A-Z_]+)\}", value, template)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--listen", default="81")
    parser.add_argument("--static", default="chatui/dist")
    parser.add_argument("--conversation", action="append", default=[])
    parser.add_argument("--prefix", default=".run/nginx")
    parser.add_argument("--mime-types", default="/etc/nginx/mime.types")
    args = parser.parse_args()
    conv = args.conversation or ["127.0.0.1:8000"]
    print(render(args.listen, args.static, conv, args.prefix, args.mime_types))


if __name__ == "__main__":
    main()
