"""What each provider's OpenAI-compatible API accepts, and how a request is shaped to fit it.

Pure Python (no Django, no I/O): ``serving.presets`` names a provider's rules, the endpoint's
``preset`` field finds them again, ``serving.streaming`` shapes every request with
:func:`shape_request`, ``ServedModel.clean`` refuses generation parameters the provider would
reject or ignore (:func:`refused_params`), and ``serving.services`` probes the endpoint the way
its API allows (:attr:`ProviderRules.health`).

Contracts:

- ``accepts`` is the set of sampling fields the provider documents; ``None`` means "any" (vLLM,
  TGI, providers without rules). A request never carries a sampling field outside it: a provider
  that rejects unknown fields (OpenAI, Gemini) would answer 400, one that ignores them would
  record a request it did not honour.
- ``max_tokens_field`` is where the answer's token cap goes (OpenAI's current models take only
  ``max_completion_tokens``).
- ``temperature_max`` caps the temperature the provider documents as its upper bound.
- ``stream_usage``: whether ``stream_options.include_usage`` is sent. Where it is not, the
  provider's usage (if any) is still read from the chunks, and the arena estimates otherwise.
- ``health``: ``"models"`` probes ``GET /models``; ``"chat"`` posts an empty chat request that
  the API refuses with 400/422 once the key is accepted (401/403 when not), so the key is
  checked without a billed completion.

The sources of each provider's rules (and the dates they were read) are in ``docs/providers.md``.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Fields the arena's own requests carry besides sampling parameters; never filtered.
ARENA_FIELDS = frozenset({"model", "messages", "stream", "stream_options"})


@dataclass(frozen=True)
class ProviderRules:
    name: str
    accepts: frozenset[str] | None = None
    max_tokens_field: str = "max_tokens"
    temperature_max: float = 2.0
    stream_usage: bool = True
    health: str = "models"
    #: What the provider's model list puts before each id that chat requests leave out.
    model_id_prefix: str = ""


ANY = ProviderRules("OpenAI-compatible server")

OPENAI = ProviderRules(
    "OpenAI",
    accepts=frozenset({"temperature", "top_p", "max_completion_tokens", "frequency_penalty", "presence_penalty",
                       "seed", "stop", "n"}),
    max_tokens_field="max_completion_tokens",
)
ANTHROPIC = ProviderRules(
    # Documented: temperature 0..1 (capped), top_p, max_tokens/max_completion_tokens, stream_options;
    # presence/frequency penalty and seed "Ignored", so they are not sent (and refused on the model).
    "Anthropic (OpenAI SDK compatibility)",
    accepts=frozenset({"temperature", "top_p", "max_tokens", "max_completion_tokens", "stop", "n"}),
    temperature_max=1.0,
    health="chat",
)
GEMINI = ProviderRules(
    # GET /models lists "models/gemini-..."; chat requests (and the preset) name "gemini-...".
    "Google Gemini (OpenAI compatibility)",
    accepts=frozenset({"temperature", "top_p", "max_tokens", "max_completion_tokens", "stop", "n"}),
    model_id_prefix="models/",
)
PERPLEXITY = ProviderRules(
    # Documented standard parameters: temperature, max_tokens, top_p, frequency/presence penalty.
    # No model list, and stream_options is not among its documented parameters.
    "Perplexity (Sonar API)",
    accepts=frozenset({"temperature", "top_p", "max_tokens", "frequency_penalty", "presence_penalty"}),
    stream_usage=False,
    health="chat",
)

RULES: dict[str, ProviderRules] = {"openai": OPENAI, "anthropic": ANTHROPIC, "gemini": GEMINI,
                                   "perplexity": PERPLEXITY}


def rules_for(preset_key: str) -> ProviderRules:
    """The rules of the provider an endpoint's preset names (``ANY`` for other presets and none)."""
    return RULES.get(preset_key or "", ANY)


def refused_params(rules: ProviderRules, names) -> list[str]:
    """The sampling parameters in ``names`` that the provider does not accept (``max_tokens`` is
    always accepted: it is renamed to the provider's field)."""
    if rules.accepts is None:
        return []
    return sorted(name for name in names if name != "max_tokens" and name not in rules.accepts)


def shape_request(rules: ProviderRules, params: dict, extra_body: dict) -> tuple[dict, dict, list[str]]:
    """Fit one request to the provider: rename the token cap, cap the temperature, drop what it
    does not accept. Returns ``(params, extra_body, dropped)``; the endpoint's own extra fields
    are the admin's explicit choice and are kept."""
    params = dict(params)
    if "max_tokens" in params and rules.max_tokens_field != "max_tokens":
        params[rules.max_tokens_field] = params.pop("max_tokens")
    if isinstance(params.get("temperature"), (int, float)) and params["temperature"] > rules.temperature_max:
        params["temperature"] = rules.temperature_max
    dropped = [] if rules.accepts is None else sorted(
        name for name in params if name not in rules.accepts and name != rules.max_tokens_field)
    for name in dropped:
        params.pop(name)
    return params, dict(extra_body), dropped
