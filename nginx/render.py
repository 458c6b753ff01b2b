"""Render nginx.conf.template from settings, for the local run, the tests and docker.

Usage: python nginx/render.py --listen 81 --static chatui/dist --conversation 127.0.0.1:8000 \
           --prefix .run/nginx > .run/nginx/nginx.conf

Every option defaults to its variable in .env.example (NGINX_MAX_BODY_SIZE, NGINX_RATE_LIMIT,
NGINX_RATE_BURST, NGINX_STREAM_TIMEOUT, NGINX_ACCESS_LOG), so compose and the local run
render the same site from the same .env. Only the standard library is used: the docker build
runs this in a bare python image.
"""

from __future__ import annotations

import argparse
import os
import re
import stat
import sys
from pathlib import Path

TEMPLATE = Path(__file__).with_name("nginx.conf.template")

# The UI is built by Vite into external files only, so no inline script or style is needed;
# 'self' for connect-src covers fetch, SSE and same-origin WebSocket in current browsers.
CSP = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "font-src 'self'",
        "connect-src 'self'",
        "manifest-src 'self'",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)

SECURITY_HEADERS: list[tuple[str, str]] = [
    ("Content-Security-Policy", CSP),
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "no-referrer"),
    ("Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=(), usb=()"),
    ("Cross-Origin-Opener-Policy", "same-origin"),
    ("Cross-Origin-Resource-Policy", "same-origin"),
    ("X-Request-ID", "$req_id"),
]

# Defaults shared by render(), the command line and .env.example.
DEFAULTS = {
    "NGINX_MAX_BODY_SIZE": "1m",
    "NGINX_RATE_LIMIT": "20r/s",
    "NGINX_RATE_BURST": "100",
    "NGINX_STREAM_TIMEOUT": "1h",
    "NGINX_ACCESS_LOG": "on",
}

# Values go into the config verbatim, so each is checked against nginx's own syntax: a typo
# in .env fails here with a clear message instead of as an obscure `nginx -t` error.
FORMATS = {
    "max_body_size": r"\d+[kKmMgG]?",
    "rate_limit": r"\d+r/[sm]",
    "rate_burst": r"\d+",
    "stream_timeout": r"\d+(ms|s|m|h|d)?",
    "worker_processes": r"auto|\d+",
    "listen": r"(\[[0-9a-fA-F:.]+\]:|[A-Za-z0-9.-]+:)?\d+",
    "upstream": r"[A-Za-z0-9.-]+:\d+|\[[0-9a-fA-F:.]+\]:\d+|unix:/[^\s;{}]+",
    "user": r"[a-z_][a-z0-9_-]*( [a-z_][a-z0-9_-]*)?",
    "resolver": r"[0-9.]+|\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+",
}


def check(kind: str, value: str) -> str:
    if not re.fullmatch(FORMATS[kind], value):
        raise ValueError(f"nginx setting {kind}={value!r} does not match {FORMATS[kind]!r}")
    return value


def render(
    listen: str,
    static_root: str,
    conversation: list[str],
    prefix: str,
    mime_types: str = "/etc/nginx/mime.types",
    *,
    max_body_size: str = DEFAULTS["NGINX_MAX_BODY_SIZE"],
    rate_limit: str = DEFAULTS["NGINX_RATE_LIMIT"],
    rate_burst: int | str = DEFAULTS["NGINX_RATE_BURST"],
    stream_timeout: str = DEFAULTS["NGINX_STREAM_TIMEOUT"],
    access_log: bool = False,
    worker_processes: str = "auto",
    user: str | None = None,
    resolver: str | None = None,
) -> str:
    """The nginx.conf text: `listen` is a port or host:port, `conversation` the replicas'
    host:port addresses, `prefix` a writable folder for the pid file and temp files.

    `user` sets the `user` directive, which only a root master may use; None leaves nginx's
    default (workers run as nobody under root, as the calling user otherwise). `resolver`
    (docker: 127.0.0.11) makes nginx look `conversation`'s one name up as requests come
    instead of once at start (see conversation_route).
    """
    if not conversation:
        raise ValueError("nginx needs at least one conversation address")
    upstream, proxy_pass = conversation_route(conversation, resolver)
    values = {
        "USER_DIRECTIVE": f"user {check('user', user)};" if user else "",
        "WORKER_PROCESSES": check("worker_processes", worker_processes),
        "LISTEN": check("listen", listen),
        "STATIC_ROOT": str(Path(static_root).resolve()),
        "CONVERSATION_UPSTREAM": upstream,
        "CONVERSATION_PASS": proxy_pass,
        "PREFIX": str(Path(prefix).resolve()),
        "MIME_TYPES": mime_types,
        "MAX_BODY_SIZE": check("max_body_size", max_body_size),
        "RATE_LIMIT": check("rate_limit", rate_limit),
        "RATE_BURST": check("rate_burst", str(rate_burst)),
        "STREAM_TIMEOUT": check("stream_timeout", stream_timeout),
        "ACCESS_LOG": "/dev/stdout main" if access_log else "off",
        "SECURITY_HEADERS": security_headers(),
    }
    return fill(TEMPLATE.read_text(), values)


def conversation_route(conversation: list[str], resolver: str | None) -> tuple[str, str]:
    """The http-level lines naming conversation's replicas, and the location's proxy_pass."""
    if resolver is None:
        servers = "\n".join(
            f"        server {check('upstream', addr)} max_fails=1 fail_timeout=2s;"
            for addr in conversation
        )
        upstream = f"    upstream conversation {{\n{servers}\n        keepalive 64;\n    }}"
        return upstream, "            proxy_pass http://conversation;"
    if len(conversation) != 1:
        raise ValueError("with a resolver, conversation is one name (every replica's address)")
    # nginx 1.22 (Debian bookworm) has no `resolve` for upstream servers; a variable in
    # proxy_pass is looked up through `resolver` when the request comes, answers cached for
    # `valid`, each answer's addresses taken in rotating order. The cost: no upstream block,
    # so no pool of kept-alive connections to the replicas (a new connection per request).
    upstream = (
        f"    resolver {check('resolver', resolver)} valid=5s ipv6=off;\n    resolver_timeout 2s;"
    )
    proxy_pass = (
        f"            set $conversation {check('upstream', conversation[0])};\n"
        "            proxy_pass http://$conversation;"
    )
    return upstream, proxy_pass


def security_headers(indent: str = "            ") -> str:
    # `always`: error answers (413, 429, 503) carry them too. nginx drops inherited add_header
    # lines in any block that adds its own, so the template repeats this block where needed.
    return "\n".join(
        f'{indent}add_header {name} "{value}" always;' for name, value in SECURITY_HEADERS
    )


def fill(template: str, values: dict[str, str]) -> str:
    """Replace ${NAME} placeholders; nginx's own $variables are left alone."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values:
            raise KeyError(f"nginx template needs a value for ${{{name}}}")
        return values[name]

    return re.sub(r"\$\{([A-Z_]+)\}", value, template)


def readable_by_others(path: Path) -> bool:
    """True when every folder up to `path` is searchable and `path` readable by anyone, so
    nginx workers running as nobody can serve it (a checkout under /root is not)."""
    path = path.resolve()
    if not path.exists():
        return False
    for folder in [*reversed(path.parents), path]:
        mode = folder.stat().st_mode
        if stat.S_ISDIR(mode) and not mode & stat.S_IXOTH:
            return False
    return bool(path.stat().st_mode & stat.S_IROTH)


def workers_user(static_root: str, prefix: str) -> str | None:
    """The `user` directive for this machine: none unless the master runs as root, and root
    only when nobody could not read the UI or write the prefix (a checkout under /root)."""
    if os.geteuid() != 0:
        return None
    if readable_by_others(Path(static_root)) and readable_by_others(Path(prefix)):
        return None
    print(
        f"render.py: {static_root} or {prefix} is not readable by 'nobody'; "
        "nginx workers will run as root",
        file=sys.stderr,
    )
    return "root"


def env(name: str) -> str:
    return os.environ.get(name) or DEFAULTS[name]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--listen", default="81")
    parser.add_argument("--static", default="chatui/dist")
    parser.add_argument("--conversation", action="append", default=[], help="host:port, repeatable")
    parser.add_argument("--prefix", default=".run/nginx")
    parser.add_argument("--mime-types", default="/etc/nginx/mime.types")
    parser.add_argument("--max-body-size", default=env("NGINX_MAX_BODY_SIZE"))
    parser.add_argument("--rate-limit", default=env("NGINX_RATE_LIMIT"))
    parser.add_argument("--rate-burst", default=env("NGINX_RATE_BURST"))
    parser.add_argument("--stream-timeout", default=env("NGINX_STREAM_TIMEOUT"))
    parser.add_argument(
        "--access-log",
        choices=["on", "off"],
        default="on" if env("NGINX_ACCESS_LOG") in ("on", "true", "1", "yes") else "off",
    )
    parser.add_argument("--worker-processes", default="auto")
    parser.add_argument(
        "--user",
        default="auto",
        help="'auto' (root only when nobody cannot read the files), 'none', or a user name",
    )
    parser.add_argument(
        "--resolver",
        help="DNS server to look --conversation up at request time (docker: 127.0.0.11)",
    )
    parser.add_argument("--output", "-o", help="write here instead of standard output")
    args = parser.parse_args(argv)
    user = args.user
    if user == "auto":
        user = workers_user(args.static, args.prefix)
    elif user == "none":
        user = None
    text = render(
        args.listen,
        args.static,
        args.conversation or ["127.0.0.1:8000"],
        args.prefix,
        args.mime_types,
        max_body_size=args.max_body_size,
        rate_limit=args.rate_limit,
        rate_burst=args.rate_burst,
        stream_timeout=args.stream_timeout,
        access_log=args.access_log == "on",
        worker_processes=args.worker_processes,
        user=user,
        resolver=args.resolver,
    )
    if args.output:
        Path(args.output).write_text(text)
    else:
        sys.stdout.write(text)


if __name__ == "__main__":
    main()
