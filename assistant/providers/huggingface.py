"""Hugging Face inference through `huggingface_hub`'s AsyncInferenceClient.

Two tasks behind one interface:
- chat completion, where the model (or its inference provider) offers it;
- the classic text-generation task for models that only complete text (the original
  tutorials' `mistralai/Mistral-7B-Instruct-v0.2`, `EleutherAI/gpt-j-6b`): the prompt is
  rendered from the model's chat template and TGI's `token` events are streamed.
HF_TASK picks one; `auto` tries chat first and falls back to text generation for good when
the model has no chat route.

Each request gets its own client: the library parks a streamed response in the client's
exit stack, so closing the client is the one way to abort an upstream request whose caller
has gone.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator
from typing import Any, cast

import httpx2
import orjson
from huggingface_hub import AsyncInferenceClient
from huggingface_hub.errors import (
    HfHubHTTPError,
    InferenceTimeoutError,
    OverloadedError,
    TextGenerationError,
    ValidationError,
)

from assistant.chat_template import ChatTemplate, TemplateError, builtin_template, merge_system
from assistant.config import Settings
from assistant.errors import (
    AssistantError,
    from_upstream_status,
    invalid_request,
    parse_retry_after,
    upstream_failed,
    upstream_message,
    upstream_rejected,
    upstream_timeout,
    upstream_unreachable,
)
from assistant.providers.base import (
    Finish,
    GenerationParams,
    Provider,
    StreamItem,
    TokenStream,
    finish_reason,
    message_dicts,
    token_budget,
    transport_detail,
)
from assistant.stops import StopFilter
from common.protocol import ChatMessage, Usage

log = logging.getLogger(__name__)

TGI_FINISH = {"length": "length", "eos_token": "stop", "stop_sequence": "stop"}


class NoChatRoute(Exception):
    """The model offers no chat-completion route (auto mode falls back to text generation)."""


def token_text(value: object) -> str:
    """`bos_token`/`eos_token` in tokenizer_config.json: a string or `{"content": ...}`."""
    if isinstance(value, dict):
        return str(value.get("content") or "")
    return value if isinstance(value, str) else ""


def special_tokens(config: dict[str, Any]) -> tuple[str, ...]:
    """The tokenizer's special tokens, as `tokenizer_config.json` lists them."""
    named = [config.get(key) for key in ("bos_token", "eos_token", "unk_token", "pad_token")]
    extra = config.get("additional_special_tokens")
    added = config.get("added_tokens_decoder")
    if isinstance(extra, list):
        named.extend(extra)
    if isinstance(added, dict):
        named.extend(t for t in added.values() if isinstance(t, dict) and t.get("special"))
    return tuple(text for text in map(token_text, named) if text)


def template_source(config: dict[str, Any]) -> str | None:
    template = config.get("chat_template")
    if isinstance(template, list):  # named templates: take the default one
        named = {t.get("name"): t.get("template") for t in template if isinstance(t, dict)}
        template = named.get("default")
    return template if isinstance(template, str) and template else None


class HuggingFaceProvider(Provider):
    name = "huggingface"

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings.hf_model)
        self.settings = settings
        self.task = settings.hf_task
        self.template: ChatTemplate | None = None
        s = settings
        backstop = max(s.upstream_first_token_timeout, s.upstream_idle_timeout)
        self._timeout = httpx2.Timeout(
            connect=s.upstream_connect_timeout,
            read=backstop + s.upstream_connect_timeout,
            write=s.upstream_connect_timeout,
            pool=s.upstream_connect_timeout,
        )
        self._token = s.hf_token.get_secret_value() if s.hf_token else None

    async def start(self) -> None:
        target = self.settings.hf_base_url or f"model {self.model_id}"
        log.info("huggingface provider: %s, task %s", target, self.task)
        if self.task == "text-generation":
            self.template = await self._load_template()
        await super().start()

    # --- chat template for text generation -----------------------------------------------------

    async def _load_template(self) -> ChatTemplate:
        s = self.settings
        if s.hf_chat_template:
            return ChatTemplate(s.hf_chat_template)
        url = f"{s.hf_hub_url.rstrip('/')}/{self.model_id}/resolve/main/tokenizer_config.json"
        headers = {"Authorization": f"Bearer {self._token}"} if self._token else {}
        try:
            async with httpx2.AsyncClient(timeout=self._timeout, follow_redirects=True) as http:
                response = await http.get(url, headers=headers)
            if response.status_code == 200:
                config = orjson.loads(response.content)
                source = template_source(config)
                if source:
                    log.info("huggingface: chat template from %s", url)
                    return ChatTemplate(
                        source,
                        bos_token=token_text(config.get("bos_token")),
                        eos_token=token_text(config.get("eos_token")),
                        special_tokens=special_tokens(config),
                    )
            reason = f"HTTP {response.status_code}, no chat_template"
        except (httpx2.HTTPError, orjson.JSONDecodeError) as exc:
            reason = transport_detail(exc)
        log.warning(
            "huggingface: no chat template for %s (%s); built-in one", self.model_id, reason
        )
        return builtin_template(self.model_id)

    # --- generation -----------------------------------------------------------------------------

    def _client(self) -> AsyncInferenceClient:
        s = self.settings
        if s.hf_base_url:  # an Inference Endpoint or TGI server: the URL is the model
            return AsyncInferenceClient(
                model=s.hf_base_url, token=self._token, timeout=cast(float, self._timeout)
            )
        return AsyncInferenceClient(
            model=self.model_id,
            provider=cast(Any, s.hf_provider),
            token=self._token,
            timeout=cast(float, self._timeout),
        )

    async def open(self, messages: list[ChatMessage], params: GenerationParams) -> TokenStream:
        return self._stream(message_dicts(messages), params)

    async def _stream(
        self, messages: list[dict[str, str]], params: GenerationParams
    ) -> AsyncGenerator[StreamItem, None]:
        async with self._client() as client:
            try:
                if self.task != "text-generation":
                    try:
                        async for item in self._chat(client, messages, params):
                            yield item
                        return
                    except NoChatRoute:
                        if self.task == "chat":
                            raise upstream_failed(
                                self.name, "the model offers no chat completion (HF_TASK=chat)"
                            ) from None
                        log.info(
                            "huggingface: %s has no chat route; text generation", self.model_id
                        )
                        self.task = "text-generation"
                async for item in self._text_generation(client, messages, params):
                    yield item
            except AssistantError:
                raise
            except Exception as exc:
                raise await self._map_error(exc) from exc

    async def _chat(
        self, client: AsyncInferenceClient, messages: list[dict[str, str]], params: GenerationParams
    ) -> AsyncGenerator[StreamItem, None]:
        try:
            # The server applies the model's template, and many allow only one system
            # message, first: the operator's prompt and the caller's go merged.
            stream = await client.chat_completion(
                messages=cast(Any, merge_system(messages)),
                stream=True,
                max_tokens=token_budget(params.max_tokens, self.settings.hf_max_new_tokens),
                temperature=params.temperature,
                top_p=params.top_p,
                stop=list(params.stop) or None,
                stream_options=cast(Any, {"include_usage": True}),
            )
        except HfHubHTTPError as exc:
            if self.task == "auto" and await self._is_missing_route(exc):
                raise NoChatRoute from exc
            raise
        reason = None
        usage = None
        async for chunk in stream:
            if chunk.usage:
                usage = Usage(
                    prompt_tokens=chunk.usage.prompt_tokens,
                    completion_tokens=chunk.usage.completion_tokens,
                    total_tokens=chunk.usage.total_tokens,
                )
            for choice in chunk.choices or ():
                if choice.delta.content:
                    yield [choice.delta.content]
                if choice.finish_reason:
                    reason = finish_reason(choice.finish_reason)
        if reason is None:
            raise upstream_failed(self.name, "the stream ended without a finish reason")
        yield Finish(reason, usage)

    async def _text_generation(
        self, client: AsyncInferenceClient, messages: list[dict[str, str]], params: GenerationParams
    ) -> AsyncGenerator[StreamItem, None]:
        if self.template is None:
            self.template = await self._load_template()
        template = self.template
        try:
            prompt = template.raw_prompt(messages)
        except TemplateError as exc:
            message = f"The model's chat template refused the messages: {exc}"
            raise invalid_request(message, "messages") from exc
        temperature = params.temperature
        stops = StopFilter([*params.stop, *template.stop])
        stream = await client.text_generation(
            prompt,
            stream=True,
            details=True,
            return_full_text=False,
            max_new_tokens=token_budget(params.max_tokens, self.settings.hf_max_new_tokens),
            # TGI wants a strictly positive temperature and top_p below 1: zero means greedy.
            do_sample=None if temperature is None else temperature > 0,
            temperature=temperature or None,
            top_p=params.top_p if params.top_p is not None and params.top_p < 1 else None,
            stop=[*params.stop, *template.stop] or None,
        )
        async for output in stream:
            token = output.token
            if not token.special:
                text, stopped = stops.feed(token.text)
                if text:
                    yield [text]
                if stopped:
                    yield Finish("stop", None)
                    return
            if output.details is not None:
                rest = stops.flush()
                if rest:
                    yield [rest]
                details = output.details
                usage = Usage(
                    prompt_tokens=details.input_length,
                    completion_tokens=details.generated_tokens,
                    total_tokens=details.input_length + details.generated_tokens,
                )
                reason = TGI_FINISH.get(str(details.finish_reason), "stop")
                yield Finish("length" if reason == "length" else "stop", usage)
                return
        raise upstream_failed(self.name, "the stream ended without its final details")

    # --- errors ------------------------------------------------------------------------------

    @staticmethod
    async def _detail(exc: HfHubHTTPError) -> str:
        response = exc.response
        summary = str(exc).splitlines()[0][:300]
        try:
            await response.aread()
        except Exception:
            return summary
        try:
            body: object = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            body = response.content.decode(errors="replace")
        return upstream_message(body, summary)

    async def _is_missing_route(self, exc: HfHubHTTPError) -> bool:
        status = exc.response.status_code
        if status in (404, 405):
            return True
        return status in (400, 422) and "not supported" in (await self._detail(exc)).lower()

    async def _map_error(self, exc: Exception) -> AssistantError:
        s = self.settings
        # Text generation re-raises an HTTP error with a TGI `error_type` as a
        # TextGenerationError caused by it: the HTTP status still decides.
        http = exc if isinstance(exc, HfHubHTTPError) else exc.__cause__
        if isinstance(http, HfHubHTTPError):
            retry_after = parse_retry_after(http.response.headers)
            detail = str(exc) if http is not exc else await self._detail(http)
            status = http.response.status_code
            return from_upstream_status(
                self.name, status, detail, retry_after, s.assistant_retry_after
            )
        if isinstance(exc, InferenceTimeoutError):
            if isinstance(exc.__cause__, httpx2.ConnectTimeout | httpx2.PoolTimeout):
                return upstream_timeout(self.name, "connection", s.upstream_connect_timeout)
            return upstream_timeout(self.name, "response", s.upstream_first_token_timeout)
        if isinstance(exc, httpx2.ConnectError):
            return upstream_unreachable(self.name, transport_detail(exc))
        if isinstance(exc, httpx2.TransportError):
            return upstream_failed(self.name, "the connection broke", transport_detail(exc))
        if isinstance(exc, OverloadedError):
            return upstream_unreachable(self.name, f"overloaded: {exc}")
        if isinstance(exc, ValidationError):
            return upstream_rejected(self.name, 422, str(exc))
        if isinstance(exc, TextGenerationError):
            return upstream_failed(self.name, "it reported an error", str(exc), retryable=False)
        return upstream_failed(self.name, "it failed unexpectedly", f"{type(exc).__name__}: {exc}")
