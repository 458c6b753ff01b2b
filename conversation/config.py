"""Settings, read from the environment (see the Conversation section of .env.example)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from common.logs import LogFormat, LogLevel

# Bytes of a WebSocket message frame besides its text: {"type", "content",
# "client_message_id" (up to 128 characters)} and JSON escapes.
WS_ENVELOPE_BYTES = 1024


class Settings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", env_ignore_empty=True)

    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_cluster: bool = False
    key_prefix: str = "chat"

    assistant_url: str = "http://127.0.0.1:8001"
    assistant_api_key: str | None = None
    assistant_model: str | None = None
    assistant_connect_timeout: float = Field(default=5.0, gt=0)
    # Seconds without a byte from assistant before a reply is abandoned as failed.
    assistant_read_timeout: float = Field(default=120.0, gt=0)
    reply_max_tokens: int | None = Field(default=None, ge=1)
    assistant_max_connections: int = Field(default=1024, ge=1)
    # Seconds an idle pooled connection to assistant is kept: below assistant's idle timeout
    # (--timeout-keep-alive 75; why: common/http.py's pooled_session). Long, so that a burst
    # after a lull finds its connections open instead of waiting for new ones.
    assistant_keepalive_timeout: float = Field(default=60.0, gt=0)
    # Replies this process writes at once; one more is refused at once with 503 + Retry-After
    # instead of queueing. The default matches the pool above: past it a turn would only wait
    # for a free connection to assistant.
    max_active_generations: int = Field(default=1024, ge=1)

    # Seconds between reads of assistant's catalogue of models (what a chat may use, and
    # each model's readiness for the UI's picker).
    catalogue_refresh_interval: float = Field(default=15.0, gt=0)
    # Title chats after their first reply (false: they keep their first message's title).
    titles: bool = True
    # The model that titles a chat after its first reply ("": the catalogue's local model,
    # else the chat's own); one assistant does not list is replaced by the chat's own.
    title_model: str = ""
    # Seconds a title may take; past it the chat keeps its first-message title.
    title_timeout: float = Field(default=30.0, gt=0)
    # Days of usage (tokens per chat and per client, per day and model) kept in Redis.
    usage_retention_days: int = Field(default=7, ge=1, le=366)

    session_ttl: int = Field(default=7 * 24 * 3600, ge=1)
    max_message_chars: int = Field(default=8000, ge=1)
    max_name_chars: int = Field(default=120, ge=1)
    max_system_prompt_chars: int = Field(default=4000, ge=0)
    context_token_budget: int = Field(default=2048, ge=1)
    # Assistant refuses requests with too many messages (its ASSISTANT_MAX_MESSAGES, 200).
    context_max_messages: int = Field(default=100, ge=1)
    # Messages one history read returns at most; older ones are paged with `before`.
    history_page_size: int = Field(default=100, ge=1)

    stream_retention: int = Field(default=600, ge=1)
    # When a reply's text is written to its stream, and why: conversation/flush_schedule.py.
    stream_flush_ms: int = Field(default=50, ge=1)
    stream_unwatched_flush_ms: int = Field(default=1000, ge=1)
    heartbeat_interval: float = Field(default=15.0, gt=0)
    generation_lease: float = Field(default=5.0, gt=0)
    # Seconds a finished reply keeps trying to store itself while Redis refuses (a restart,
    # a failover's read-only moment) before giving up; it then shows as interrupted, with the
    # text its stream holds. Its clients get `done` once it is stored (or given up).
    reply_store_retry_timeout: float = Field(default=30.0, ge=0)
    # Seconds a stopping process (SIGTERM) lets the replies it is writing finish before it
    # marks the rest interrupted. Keep the process manager's patience longer (compose's
    # stop_grace_period, Kubernetes' terminationGracePeriodSeconds, uvicorn's
    # --timeout-graceful-shutdown).
    shutdown_grace_period: float = Field(default=30.0, ge=0)

    cookie_name: str = "chat_browser"
    cookie_secure: bool = False
    cookie_max_age: int = Field(default=180 * 24 * 3600, ge=1)

    # Per-client limits, shared by every replica through Redis; 0 turns a limit off. What a
    # client is, and why its IP address has its own, higher, numbers: conversation/limits.py.
    # Peers whose X-Real-IP / X-Forwarded-For name the client (nginx): addresses or networks,
    # comma-separated. Anyone else's address is the client's own.
    trusted_proxies: str = "127.0.0.1,::1"
    limit_ip_generations: int = Field(default=32, ge=0)
    limit_client_generations: int = Field(default=8, ge=0)
    limit_ip_turns: int = Field(default=300, ge=0)
    limit_client_turns: int = Field(default=60, ge=0)
    limit_turn_window: float = Field(default=60.0, gt=0)
    limit_ip_tokens: int = Field(default=2_000_000, ge=0)
    limit_client_tokens: int = Field(default=500_000, ge=0)
    limit_token_window: float = Field(default=24 * 3600.0, gt=0)
    limit_ip_sessions: int = Field(default=300, ge=0)
    limit_session_window: float = Field(default=3600.0, gt=0)
    # Storage: sessions one browser keeps (as many as its list shows), messages on a
    # session's active path (which also bounds the scripts that read a whole history), and
    # messages a session stores over all its branches (edits and regenerations add
    # versions; this bounds the scripts that walk the tree). 0: no limit.
    max_sessions_per_browser: int = Field(default=200, ge=0)
    max_messages_per_session: int = Field(default=2000, ge=0)
    max_stored_messages_per_session: int = Field(default=10000, ge=0)
    # Import (POST /api/import): the largest file read (bytes; NGINX_IMPORT_MAX_BODY_SIZE
    # bounds it too), chats per file, characters per message, and nodes per ChatGPT
    # conversation (its tree holds hidden and branched messages besides those shown).
    import_max_bytes: int = Field(default=8 * 1024 * 1024, ge=1)
    import_max_chats: int = Field(default=200, ge=1)
    import_max_message_chars: int = Field(default=100_000, ge=1)
    import_max_nodes: int = Field(default=10_000, ge=1)
    # Share links: the longest a link lives (seconds; also its lifetime when the owner gives
    # none: every key expires), and links one chat may have at once.
    share_max_ttl: int = Field(default=30 * 24 * 3600, ge=60)
    max_shares_per_session: int = Field(default=20, ge=1)
    # Search: results per query at most, and the longest query.
    search_max_results: int = Field(default=20, ge=1)
    search_max_query_chars: int = Field(default=200, ge=1)
    # Frames per second one WebSocket may send, and how many at once (a token bucket). Past
    # it a frame gets an error frame; another while still past it closes the socket (1008).
    ws_frame_rate: float = Field(default=5.0, gt=0)
    ws_frame_burst: int = Field(default=20, ge=1)

    @property
    def ws_max_frame_bytes(self) -> int:
        """Largest WebSocket frame read (bigger: close 1009): the longest message in UTF-8
        (at most 4 bytes a character) and the frame's JSON around it."""
        return self.max_message_chars * 4 + WS_ENVELOPE_BYTES

    # One JSON object per log line (for log collectors), or text for a person at a terminal.
    log_format: LogFormat = "json"
    log_level: LogLevel = "INFO"
