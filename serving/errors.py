"""Errors of serving, and how an endpoint's refusal is told apart from its failure."""

import re

import openai


class EngineError(Exception):
    """An endpoint or engine did not do what was asked; the message is safe to show to staff."""


class EngineUnreachable(EngineError):
    """The engine did not answer (refused connection, timeout, 502/503/504): retry later, blame no model."""


#: What an engine or provider says when the request's content is at fault: context overflow (vLLM, OpenAI:
#: "maximum context length", "context_length_exceeded"; "max_tokens is too large"), a prompt over a
#: size limit, a content filter (Azure: "content_filter").
_INPUT_REFUSAL = re.compile(r"context|too long|too large|too many|max_tokens|max_model_len|input_tokens|"
                            r"content[ _](?:filter|policy|management)", re.IGNORECASE)


def input_refused(exc: BaseException) -> bool:
    """Whether the endpoint refused the request for its content (the arena records such an error as the
    rater's): a 413, or a 400/422 that says the content was at fault. Other 4xx (key, unknown model, rate
    limit) and every 5xx, timeout or lost connection are the endpoint's own failure."""
    if not isinstance(exc, openai.APIStatusError):
        return False
    return exc.status_code == 413 or (exc.status_code in (400, 422) and bool(_INPUT_REFUSAL.search(str(exc))))
