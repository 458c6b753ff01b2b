"""Render nginx.conf.template from settings, for the local run, the tests and docker.

Usage: python nginx/render.py --listen 81 --static chatui/dist --conversation 127.0.0.1:8000 \
           --prefix .run/nginx > .run/nginx/nginx.conf

Every option defaults to its variable in .env.example (NGINX_MAX_BODY_SIZE for
--max-body-size, and so on: see DEFAULTS), so compose and the local run render the same site
from the same .env. Only the standard library is used: the docker build runs this in a bare
python image.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import re
import stat
import sys
from dataclasses import dataclass
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
        "base-uri 'none'",
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

# Defaults shared by render(), the command line and .env.example. Each NGINX_X is render()'s
# `x` and the command line's --x.
DEFAULTS = {
    "NGINX_MAX_BODY_SIZE": "1m",
    # `POST /api/import` alone: a chat export (ChatGPT's especially) is far bigger than any
    # message; conversation's IMPORT_MAX_BYTES (8 MiB) is the limit that says why.
    "NGINX_IMPORT_MAX_BODY_SIZE": "8m",
    "NGINX_RATE_LIMIT": "20r/s",
    "NGINX_RATE_BURST": "100",
    "NGINX_CONN_LIMIT": "64",
    "NGINX_STREAM_TIMEOUT": "1h",
    # Above conversation's WebSocket ping interval (uvicorn's, 20 s), which keeps a healthy
    # socket from ever being silent that long.
    "NGINX_WS_IDLE_TIMEOUT": "60s",
    "NGINX_CLIENT_HEADER_TIMEOUT": "10s",
    "NGINX_CLIENT_BODY_TIMEOUT": "10s",
    "NGINX_SEND_TIMEOUT": "30s",
    # Above the 60 s some clients keep an idle connection (aiohttp, used by bench/), so they
    # never reuse one nginx has just closed.
    "NGINX_KEEPALIVE_TIMEOUT": "65s",
    "NGINX_TRUSTED_PROXIES": "",
    "NGINX_ACCESS_LOG": "on",
}
# The settings render() takes as text.
TUNABLE = [name for name in DEFAULTS if name != "NGINX_ACCESS_LOG"]

# Up to 4 header buffers of 8 KiB each (nginx's defaults, written out): the request line and
# each header line must fit one; all headers together, all of them.
HEADER_BUFFERS = 4
HEADER_BUFFER_SIZE = "8k"

DURATION = r"\d+(ms|s|m|h|d)?"
# Values go into the config verbatim, so each is checked against nginx's own syntax: a typo
# in .env fails here with a clear message instead of as an obscure `nginx -t` error.
FORMATS = {
    "max_body_size": r"\d+[kKmMgG]?",
    "import_max_body_size": r"\d+[kKmMgG]?",
    "rate_limit": r"\d+r/[sm]",
    "rate_burst": r"\d+",
    "conn_limit": r"[1-9]\d*",
    "stream_timeout": DURATION,
    "ws_idle_timeout": DURATION,
    "client_header_timeout": DURATION,
    "client_body_timeout": DURATION,
    "send_timeout": DURATION,
    "keepalive_timeout": DURATION,
    "worker_processes": r"auto|\d+",
    "listen": r"(\[[0-9a-fA-F:.]+\]:|[A-Za-z0-9.-]+:)?\d+",
    "upstream": r"[A-Za-z0-9.-]+:\d+|\[[0-9a-fA-F:.]+\]:\d+|unix:/[^\s;{}]+",
    "user": r"[a-z_][a-z0-9_-]*( [a-z_][a-z0-9_-]*)?",
    "path": r"/[^\s;{}'\"]+",
    "resolver": r"[0-9.]+|\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+",
}


# Query arguments whose value is, or may be, a credential: every name that mentions one
# (token, access_token, api_key, key, password, secret, auth...), and every name written with
# percent-escapes, which the app decodes (`%74oken` is `token`). Redacting a harmless name that
# matches costs nothing. nginx has no loop, so a chain of maps each redacts the first value
# still in clear; a query with more of them than the chain is long is logged as "?[redacted]".
SECRET_ARGUMENT = r"[?&][^&=]*(?:token|key|pass|secret|auth|%)[^&=]*="
IN_CLEAR = r"(?!\[redacted\](?:&|$))"
REDACTION_PASSES = 3


@dataclass(frozen=True)
class ErrorPage:
    """One JSON answer of nginx's own: `code` and `detail` as in conversation's errors."""

    status: int
    code: str
    detail: str
    # The statuses nginx raises that get this answer (494: its own "header too large").
    replaces: tuple[int, ...]
    retry_after: int | None = None

    @property
    def uri(self) -> str:
        # An internal URI, not a named location: a request nginx could not parse (an
        # oversized or garbled request line) has no URI, and nginx refuses to send one of
        # those to a named location (a 500 instead).
        return f"/_errors/{self.status}"


def error_pages(max_body_size: str, import_max_body_size: str) -> list[ErrorPage]:
    size = HEADER_BUFFER_SIZE
    return [
        ErrorPage(400, "bad_request", "The request is malformed.", (400,)),
        ErrorPage(
            413,
            "payload_too_large",
            f"Request body too large (limit {max_body_size}; {import_max_body_size} for "
            "POST /api/import).",
            (413,),
        ),
        ErrorPage(414, "uri_too_long", f"Request URI too long (limit {size}).", (414,)),
        ErrorPage(
            429,
            "rate_limited",
            "Too many requests from this address; retry in a moment.",
            (429,),
            retry_after=1,
        ),
        ErrorPage(
            431,
            "headers_too_large",
            f"Request headers too large (limit {size} a line, {HEADER_BUFFERS} x {size} in all).",
            (494,),
        ),
        ErrorPage(
            503,
            "service_unavailable",
            "The chat service is not reachable right now; retry in a moment.",
            (502, 503, 504),
            retry_after=2,
        ),
    ]


def error_pages_conf(pages: list[ErrorPage]) -> str:
    lines: list[str] = []
    for page in pages:
        replaced = " ".join(str(status) for status in page.replaces)
        lines.append(f"        error_page {replaced} ={page.status} {page.uri};")
    for page in pages:
        body = json.dumps({"detail": page.detail, "code": page.code}, separators=(",", ":"))
        retry = (
            [f"            add_header Retry-After {page.retry_after} always;"]
            if page.retry_after is not None
            else []
        )
        lines += [
            "",
            f"        location = {page.uri} {{",
            "            internal;",
            security_headers(),
            *retry,
            "            default_type application/json;",
            f"            return {page.status} '{body}\\n';",
            "        }",
        ]
    return "\n".join(lines)


def query_redaction() -> str:
    """The maps from $log_query_0 (the query as sent) to $log_query (the query as logged)."""
    maps = []
    for n in range(1, REDACTION_PASSES + 1):
        pattern = f"~*^(.*?{SECRET_ARGUMENT}){IN_CLEAR}[^&]*(.*)$"
        maps.append(
            f"    map $log_query_{n - 1} $log_query_{n} {{\n"
            f'        "{pattern}" "$1[redacted]$2";\n'
            f"        default $log_query_{n - 1};\n"
            "    }"
        )
    last = REDACTION_PASSES
    maps.append(
        f"    map $log_query_{last} $log_query {{\n"
        f'        "~*{SECRET_ARGUMENT}{IN_CLEAR}" "?[redacted]";\n'
        f"        default $log_query_{last};\n"
        "    }"
    )
    return "\n".join(maps)


def connections(limit: str) -> str:
    # nginx counts a key's connections in 16 bits.
    if int(check("conn_limit", limit)) > 65535:
        raise ValueError(f"nginx setting conn_limit={limit!r} is above nginx's 65535")
    return limit


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
    import_max_body_size: str = DEFAULTS["NGINX_IMPORT_MAX_BODY_SIZE"],
    rate_limit: str = DEFAULTS["NGINX_RATE_LIMIT"],
    rate_burst: int | str = DEFAULTS["NGINX_RATE_BURST"],
    conn_limit: int | str = DEFAULTS["NGINX_CONN_LIMIT"],
    stream_timeout: str = DEFAULTS["NGINX_STREAM_TIMEOUT"],
    ws_idle_timeout: str = DEFAULTS["NGINX_WS_IDLE_TIMEOUT"],
    client_header_timeout: str = DEFAULTS["NGINX_CLIENT_HEADER_TIMEOUT"],
    client_body_timeout: str = DEFAULTS["NGINX_CLIENT_BODY_TIMEOUT"],
    send_timeout: str = DEFAULTS["NGINX_SEND_TIMEOUT"],
    keepalive_timeout: str = DEFAULTS["NGINX_KEEPALIVE_TIMEOUT"],
    trusted_proxies: str = DEFAULTS["NGINX_TRUSTED_PROXIES"],
    access_log: bool | str = False,
    worker_processes: str = "auto",
    user: str | None = None,
    resolver: str | None = None,
) -> str:
    """The nginx.conf text: `listen` is a port or host:port, `conversation` the replicas'
    host:port addresses, `prefix` a writable folder for the pid file and temp files.

    `trusted_proxies`: addresses or networks (comma or space separated) whose X-Forwarded-For
    names the client; none by default.
    `access_log`: True for standard output, a file path, or False for none.
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
        "IMPORT_MAX_BODY_SIZE": check("import_max_body_size", import_max_body_size),
        "RATE_LIMIT": check("rate_limit", rate_limit),
        "RATE_BURST": check("rate_burst", str(rate_burst)),
        "CONN_LIMIT": connections(str(conn_limit)),
        "STREAM_TIMEOUT": check("stream_timeout", stream_timeout),
        "WS_IDLE_TIMEOUT": check("ws_idle_timeout", ws_idle_timeout),
        "CLIENT_HEADER_TIMEOUT": check("client_header_timeout", client_header_timeout),
        "CLIENT_BODY_TIMEOUT": check("client_body_timeout", client_body_timeout),
        "SEND_TIMEOUT": check("send_timeout", send_timeout),
        "KEEPALIVE_TIMEOUT": check("keepalive_timeout", keepalive_timeout),
        "LARGE_HEADER_BUFFERS": f"{HEADER_BUFFERS} {HEADER_BUFFER_SIZE}",
        "REAL_IP": real_ip(trusted_proxies),
        "ACCESS_LOG": access_log_target(access_log),
        "QUERY_REDACTION": query_redaction(),
        "ERROR_PAGES": error_pages_conf(error_pages(max_body_size, import_max_body_size)),
        "SECURITY_HEADERS": security_headers(),
    }
    return fill(TEMPLATE.read_text(), values)


def real_ip(trusted_proxies: str) -> str:
    items = [item for item in re.split(r"[\s,]+", trusted_proxies) if item]
    try:
        networks = [ipaddress.ip_network(item, strict=False) for item in items]
    except ValueError as exc:
        raise ValueError(f"nginx setting trusted_proxies={trusted_proxies!r}: {exc}") from None
    if not networks:
        return ""
    # Recursive: the client is the last address in the header that is not one of the proxies,
    # so an address a client wrote into the header itself is never taken.
    return "\n".join(
        [
            *(f"    set_real_ip_from {network};" for network in networks),
            "    real_ip_header X-Forwarded-For;",
            "    real_ip_recursive on;",
        ]
    )


def access_log_target(access_log: bool | str) -> str:
    if access_log is True:
        return "/dev/stdout main"
    if not access_log:
        return "off"
    return f"{check('path', access_log)} main"


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


def option(name: str) -> str:
    """render()'s keyword for a setting: NGINX_RATE_LIMIT is rate_limit."""
    return name.removeprefix("NGINX_").lower()


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
    for name in TUNABLE:
        parser.add_argument(f"--{option(name).replace('_', '-')}", default=env(name))
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
        access_log=args.access_log == "on",
        worker_processes=args.worker_processes,
        user=user,
        **{option(name): getattr(args, option(name)) for name in TUNABLE},
        resolver=args.resolver,
    )
    if args.output:
        Path(args.output).write_text(text)
    else:
        sys.stdout.write(text)


if __name__ == "__main__":
    main()
