"""Usage and cost of battles: per response, per battle side, per model, and daily spend against budgets.

A response's tokens are the API's usage when the stream reported it, else
estimates (``arena.style.approx_tokens`` over the messages sent and the answer),
flagged ``usage_estimated``. Its cost is ``prompt × input price + completion ×
output price`` (prices per million tokens on the served model) plus the model's
request fee (``price_per_request_usd``, e.g. Perplexity's search fee); a model without
prices costs nothing. Each cost is also added to the model's ``DailySpend`` of the (UTC) day,
which budgets are checked against. Admin-only figures: nothing here is on a
public page.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

from django.db import IntegrityError, transaction
from django.db.models import Count, F, Q, Sum
from django.utils import timezone

from arena.models import Battle, DailySpend, Response, Vote
from arena.style import approx_tokens
from serving.models import Endpoint, ServedModel

MILLION = Decimal(1_000_000)
CENT_MILLIONTHS = Decimal("0.00000001")  # the precision of Response.cost_usd


def _usd(value) -> Decimal | None:
    """A database sum as a Decimal at cost precision (SQLite sums decimals as floats)."""
    return None if value is None else Decimal(value).quantize(CENT_MILLIONTHS)


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int
    estimated: bool


def response_usage(
    messages: list[dict], content: str, *, prompt_tokens: int | None, completion_tokens: int | None
) -> Usage:
    """The API's counts where it reported both, else estimates from the text (marked estimated)."""
    if prompt_tokens is not None and completion_tokens is not None:
        return Usage(prompt_tokens, completion_tokens, False)
    sent = sum(approx_tokens(str(message.get("content", ""))) for message in messages)
    return Usage(
        prompt_tokens if prompt_tokens is not None else sent,
        completion_tokens if completion_tokens is not None else approx_tokens(content),
        True,
    )


def response_cost(usage: Usage, model: ServedModel) -> Decimal | None:
    """USD for one response at the model's token prices plus its request fee; None when it has no price."""
    price_in, price_out, fee = model.price_input_per_mtok, model.price_output_per_mtok, model.price_per_request_usd
    if price_in is None and price_out is None and fee is None:
        return None
    cost = usage.prompt_tokens * (price_in or 0) + usage.completion_tokens * (price_out or 0)
    return (Decimal(cost) / MILLION + (fee or 0)).quantize(CENT_MILLIONTHS)


def response_account(response: Response, messages: list[dict], *, prompt_tokens: int | None) -> None:
    """Set a finishing response's usage and cost (unsaved). ``completion_tokens`` holds the API's count, if any.

    A side that failed before answering anything and reported no usage is not billed.
    """
    if response.state != Response.State.DONE and not response.content and response.completion_tokens is None:
        return
    usage = response_usage(messages, response.content, prompt_tokens=prompt_tokens,
                           completion_tokens=response.completion_tokens)
    response.prompt_tokens, response.completion_tokens = usage.prompt_tokens, usage.completion_tokens
    response.usage_estimated = usage.estimated
    response.cost_usd = response_cost(usage, response.model)
    if response.cost_usd:
        spend_record(response.model_id, response.cost_usd)


def day_start(now: datetime | None = None) -> datetime:
    """Midnight UTC of ``now``'s day: when daily budgets start again."""
    now = now or timezone.now()
    return datetime.combine(now.astimezone(UTC).date(), time.min, tzinfo=UTC)


def spend_record(model_id: int, cost: Decimal, *, day: date | None = None) -> None:
    """Add ``cost`` to the model's spend of ``day`` (today, UTC). Safe under concurrent finishes."""
    day = day or day_start().date()
    if DailySpend.objects.filter(day=day, served_model_id=model_id).update(cost_usd=F("cost_usd") + cost):
        return
    try:
        with transaction.atomic():
            DailySpend.objects.create(day=day, served_model_id=model_id, cost_usd=cost)
    except IntegrityError:  # a concurrent finish created the row first
        DailySpend.objects.filter(day=day, served_model_id=model_id).update(cost_usd=F("cost_usd") + cost)


def spend_today() -> tuple[dict[int, Decimal], dict[int, Decimal]]:
    """Today's spend ``({model id: USD}, {endpoint id: USD})`` from the daily tallies (one small query)."""
    rows = DailySpend.objects.filter(day=day_start().date()).values_list(
        "served_model_id", "served_model__endpoint_id", "cost_usd")
    by_model: dict[int, Decimal] = {}
    by_endpoint: dict[int, Decimal] = {}
    for model_id, endpoint_id, spent in rows:
        by_model[model_id] = _usd(spent)
        by_endpoint[endpoint_id] = by_endpoint.get(endpoint_id, Decimal(0)) + by_model[model_id]
    return by_model, by_endpoint


def budget_holds(models: list[ServedModel]) -> dict[int, str]:
    """Models whose own or whose endpoint's daily budget is spent, with the reason an admin reads."""
    if all(m.daily_budget_usd is None and m.endpoint.daily_budget_usd is None for m in models):
        return {}
    by_model, by_endpoint = spend_today()
    holds = {}
    for model in models:
        spent, budget = by_model.get(model.pk, Decimal(0)), model.daily_budget_usd
        if budget is not None and spent >= budget:
            holds[model.pk] = f"daily budget spent (${spent:.2f} of ${budget:.2f})"
            continue
        endpoint: Endpoint = model.endpoint
        spent, budget = by_endpoint.get(endpoint.pk, Decimal(0)), endpoint.daily_budget_usd
        if budget is not None and spent >= budget:
            holds[model.pk] = f"endpoint {endpoint.name}: daily budget spent (${spent:.2f} of ${budget:.2f})"
    return holds


def battle_costs(battle: Battle) -> dict[str, Decimal | None]:
    """USD per side over the battle's turns (None: that side's model has no prices)."""
    rows = dict(Response.objects.filter(turn__battle=battle).values_list("side").annotate(cost=Sum("cost_usd")))
    return {side: _usd(rows.get(side)) for side in ("a", "b")}


def model_usage(model: ServedModel, *, days: int | None = None) -> dict:
    """Responses, tokens (and how many were estimated), cost, votes and cost per 1,000 votes of a model."""
    rows = Response.objects.filter(model=model)
    votes = Vote.objects.filter(Q(battle__model_a=model) | Q(battle__model_b=model))
    if days is not None:
        since = timezone.now() - timedelta(days=days)
        rows, votes = rows.filter(started_at__gte=since), votes.filter(created_at__gte=since)
    totals = rows.aggregate(
        responses=Count("id"), prompt_tokens=Sum("prompt_tokens"), completion_tokens=Sum("completion_tokens"),
        estimated=Count("id", filter=Q(usage_estimated=True)), cost=Sum("cost_usd"),
    )
    vote_count = votes.count()
    cost = totals["cost"] = _usd(totals["cost"])
    per_1000 = (cost * 1000 / vote_count).quantize(Decimal("0.0001")) if cost is not None and vote_count else None
    return {**totals, "votes": vote_count, "cost_per_1000_votes": per_1000}


def battles_usage(battles) -> dict[int, dict[str, dict]]:
    """``{battle id: {side: {prompt_tokens, completion_tokens, estimated, cost_usd}}}`` for a battle queryset
    or id list (one query); cost as a string (exact decimal), None where the model has no prices."""
    rows = (Response.objects.filter(turn__battle__in=battles).values("turn__battle_id", "side")
            .annotate(prompt=Sum("prompt_tokens"), completion=Sum("completion_tokens"), cost=Sum("cost_usd"),
                      estimated=Count("id", filter=Q(usage_estimated=True))))
    usage: dict[int, dict[str, dict]] = {}
    for row in rows:
        usage.setdefault(row["turn__battle_id"], {})[row["side"]] = {
            "prompt_tokens": row["prompt"], "completion_tokens": row["completion"],
            "estimated": bool(row["estimated"]), "cost_usd": None if row["cost"] is None else str(_usd(row["cost"])),
        }
    return usage
