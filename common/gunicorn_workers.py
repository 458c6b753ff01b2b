"""The uvicorn workers gunicorn runs in the production images (see the Dockerfiles).

The local run starts uvicorn with these options on its command line (Procfile); gunicorn has
no flags for them, so each worker class carries them.
"""

from __future__ import annotations

from typing import Any

from uvicorn_worker import UvicornWorker


class Worker(UvicornWorker):
    # No Server header and no access log: nginx is the public door and logs every request.
    # Open streams get a few seconds to finish on stop; their replies are resumable anyway.
    # (Not a ClassVar: UvicornWorker declares it as a plain attribute.)
    CONFIG_KWARGS: dict[str, Any] = {  # noqa: RUF012
        **UvicornWorker.CONFIG_KWARGS,
        "server_header": False,
        "access_log": False,
        "timeout_graceful_shutdown": 5,
    }


class ConversationWorker(Worker):
    # The lighter WebSocket protocol of conversation/ws_server.py, and no permessage-deflate
    # (small JSON frames barely compress; each deflating socket holds ~115 KiB of zlib state).
    CONFIG_KWARGS: dict[str, Any] = {  # noqa: RUF012
        **Worker.CONFIG_KWARGS,
        "ws": "conversation.ws_server:WebSocketProtocol",
        "ws_per_message_deflate": False,
    }
