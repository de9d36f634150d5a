"""Contestants, battles, their turns and per-side responses, votes, and leaderboard snapshots."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.core.validators import MinValueValidator
from django.db import models
from django.utils import timezone

from serving.models import ServedModel


class Contestant(models.Model):
    """The arena's terms for a served model: how often it is drawn into battles, and its new-model boost.

    A healthy served model without a row battles on the defaults (weight 1, no boost);
    ``arena.pairing.contestants.contestant_enter`` creates rows; a weight of 0 draws a model only when no other can be.
    """

    served_model = models.OneToOneField(ServedModel, on_delete=models.CASCADE, primary_key=True,
                                        related_name="contestant")
    sampling_weight = models.FloatField(default=1.0, validators=[MinValueValidator(0.0)])
    boost_weight = models.FloatField(default=1.0, validators=[MinValueValidator(1.0)])
    boost_votes_left = models.PositiveIntegerField(default=0)
    # Retired (arena.pairing.retirement): never drawn into battles again; its votes stay in the fit and it
    # is shown in the board's "Retired" section. Who and why are logged as a BoardChange.
    retired_at = models.DateTimeField(null=True, blank=True)
    retired_by = models.CharField(max_length=150, blank=True)
    retired_reason = models.TextField(blank=True)

    class Meta:
        ordering = ["served_model__public_name"]

    def __str__(self) -> str:
        return str(self.served_model)

    def effective_weight(self) -> float:
        """Sampling weight, boosted while a new model still needs votes."""
        boost = self.boost_weight if self.boost_votes_left > 0 else 1.0
        return max(0.0, float(self.sampling_weight)) * boost


class Battle(models.Model):
    class Status(models.TextChoices):
        OPEN = "open", "Open"
        VOTED = "voted", "Voted"

    class Mode(models.TextChoices):
        ANONYMOUS = "anony", "Anonymous"
        NAMED = "named", "Named"

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    model_a = models.ForeignKey(ServedModel, on_delete=models.PROTECT, related_name="battles_as_a")
    model_b = models.ForeignKey(ServedModel, on_delete=models.PROTECT, related_name="battles_as_b")
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.OPEN)
    mode = models.CharField(max_length=8, choices=Mode.choices, default=Mode.ANONYMOUS)
    # OpenAI messages format, one list per side; both hold the same user turns.
    conversation_a = models.JSONField(default=list)
    conversation_b = models.JSONField(default=list)
    # Category facts, kept as columns so the leaderboard can aggregate them in SQL.
    language = models.CharField(max_length=16, blank=True, db_index=True)
    turn_total = models.PositiveSmallIntegerField(default=0, help_text="Turns so far (user prompts)")
    prompt_tokens = models.PositiveIntegerField(default=0, help_text="Approximate tokens of the longest user prompt")
    # Who rated, without saying who: the session's anonymous id and a salted hash of the IP.
    rater_id = models.CharField(max_length=64, db_index=True)
    ip_hash = models.CharField(max_length=64, blank=True, db_index=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)


    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(condition=~models.Q(model_a=models.F("model_b")), name="battle_two_models"),
        ]

    def __str__(self) -> str:
        return f"Battle {str(self.public_id)[:8]}"

    def is_locked(self) -> bool:
        return self.status != self.Status.OPEN

    def conversation(self, side: str) -> list[dict]:
        return self.conversation_a if side == "a" else self.conversation_b

    def model(self, side: str) -> ServedModel:
        return self.model_a if side == "a" else self.model_b


class Turn(models.Model):
    battle = models.ForeignKey(Battle, on_delete=models.CASCADE, related_name="turns")
    index = models.PositiveSmallIntegerField()
    prompt = models.TextField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["battle", "index"]
        constraints = [models.UniqueConstraint(fields=["battle", "index"], name="unique_turn_index")]


class Response(models.Model):
    """One side's answer in one turn, with what it took to produce it."""

    class State(models.TextChoices):
        PENDING = "pending", "Generating"
        DONE = "done", "Done"
        ERROR = "error", "Error"
        CANCELLED = "cancelled", "Cancelled"

    turn = models.ForeignKey(Turn, on_delete=models.CASCADE, related_name="responses")
    side = models.CharField(max_length=1, choices=[("a", "A"), ("b", "B")])
    model = models.ForeignKey(ServedModel, on_delete=models.PROTECT, related_name="responses")
    state = models.CharField(max_length=10, choices=State.choices, default=State.PENDING)
    content = models.TextField(blank=True)
    generation = models.JSONField(default=dict)
    finish_reason = models.CharField(max_length=32, blank=True)
    error = models.TextField(blank=True)
    # The rater's own input caused the error (the engine refused the prompt: context overflow, a 4xx for
    # the request): recorded, shown in the serving statistics, never counted toward an error hold.
    rater_caused = models.BooleanField(default=False, help_text="The engine refused the rater's prompt (context "
                                       "overflow, a 4xx for its content): not counted toward an error hold")
    ttft_ms = models.FloatField(null=True, blank=True)
    tokens_per_s = models.FloatField(null=True, blank=True)
    completion_tokens = models.PositiveIntegerField(null=True, blank=True)
    # Usage and cost (arena/battle/costs.py): the API's counts, or estimates marked ``usage_estimated``.
    prompt_tokens = models.PositiveIntegerField(null=True, blank=True)
    usage_estimated = models.BooleanField(default=False)
    cost_usd = models.DecimalField(max_digits=12, decimal_places=8, null=True, blank=True)
    # Which adapter weights answered: the served model's verified directory hash at the time.
    adapter_sha256 = models.CharField(max_length=64, blank=True)
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["turn", "side"]
        constraints = [models.UniqueConstraint(fields=["turn", "side"], name="unique_response_side")]
        indexes = [models.Index(fields=["model", "started_at"], name="response_model_started")]


class DailySpend(models.Model):
    """A served model's spend on one UTC day, added to as responses finish (``arena.battle.costs.spend_record``):
    what daily budgets are checked against on every new battle, without summing responses."""

    day = models.DateField()
    served_model = models.ForeignKey(ServedModel, on_delete=models.CASCADE, related_name="daily_spend")
    cost_usd = models.DecimalField(max_digits=14, decimal_places=8, default=0)

    class Meta:
        ordering = ["-day"]
        constraints = [models.UniqueConstraint(fields=["day", "served_model"], name="unique_daily_spend")]


class VoteQuerySet(models.QuerySet):
    def counted(self) -> VoteQuerySet:
        """Votes that enter the ratings: anonymous battles, no identity leak, no errored side, and
        no quality exclusion (see arena/quality/rules.py)."""
        return self.filter(battle__mode=Battle.Mode.ANONYMOUS, identity_leak=False, side_error=False, exclusion="")


class Vote(models.Model):
    class Winner(models.TextChoices):
        MODEL_A = "model_a", "A is better"
        MODEL_B = "model_b", "B is better"
        TIE = "tie", "Tie"
        BOTH_BAD = "tie (bothbad)", "Both are bad"

    # One vote per battle, enforced by the database (OneToOne is a unique constraint).
    battle = models.OneToOneField(Battle, on_delete=models.CASCADE, related_name="vote")
    winner = models.CharField(max_length=16, choices=Winner.choices)
    class Exclusion(models.TextChoices):
        """Why a stored vote is left out of the ratings ("" = counted); see arena/quality/rules.py."""

        COUNTED = "", "Counted"
        SIDE_INCOMPLETE = "side_incomplete", "A side was stopped or empty"
        TOO_FAST = "too_fast", "Cast too fast after the answers"
        REPEATED_PROMPT = "repeated_prompt", "Prompt repeated beyond the cap"
        MODERATION = "moderation", "Flagged by moderation"
        OUTLIER_RATER = "outlier_rater", "Rater's votes are outliers"
        KEY_SHARE = "key_share", "Over one rater's share of a model's votes"
        STAFF_EXCLUDED = "staff_excluded", "Rater excluded by staff"

    rater_id = models.CharField(max_length=64, db_index=True)
    ip_hash = models.CharField(max_length=64, blank=True, db_index=True)
    exclusion = models.CharField(max_length=20, choices=Exclusion.choices, blank=True, default="", db_index=True)
    # Seconds from the last answer's end to the vote; a digest of the first prompt (repeat cap).
    decision_s = models.FloatField(null=True, blank=True)
    prompt_hash = models.CharField(max_length=32, blank=True, db_index=True)
    identity_leak = models.BooleanField(default=False)
    identity_words = models.JSONField(default=list, blank=True)
    side_error = models.BooleanField(default=False)
    # Style counts of each side's answers, {"a": {"tokens", "headers", "lists", "bold"}, "b": {...}}, for style control.
    style = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    objects = VoteQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.battle_id}: {self.winner}"


class RatingSnapshot(models.Model):
    """A computed leaderboard (all categories), served to pages until the next one."""

    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    last_vote_id = models.BigIntegerField(default=0)
    data = models.JSONField()
    compute_ms = models.FloatField(default=0.0)
    # The online Elo ratings per category after the votes up to last_vote_id, carried into the
    # next snapshot so it only replays newer votes. Apart from ``data``: pages never read it.
    elo_state = models.JSONField(default=dict, blank=True)
    # What the snapshot was computed from (votes, models, settings); equal means "still current".
    fingerprint = models.CharField(max_length=64, blank=True)

    class Meta:
        ordering = ["-created_at"]
        get_latest_by = "created_at"


class BoardChange(models.Model):
    """The public change log of the leaderboard: retirements, reinstatements, votes counted again.

    ``actor`` (the staff user) is kept for the admin; the public log shows the rest.
    """

    class Kind(models.TextChoices):
        RETIRED = "retired", "Model retired"
        REINSTATED = "reinstated", "Model reinstated"
        VOTES_REINCLUDED = "votes_reincluded", "Excluded votes counted again"

    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    kind = models.CharField(max_length=20, choices=Kind.choices)
    model_name = models.CharField(max_length=200, blank=True)
    votes = models.PositiveIntegerField(default=0)
    actor = models.CharField(max_length=150)
    reason = models.TextField()

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.model_name or f'{self.votes} votes'}"


class RaterDecision(models.Model):
    """A staff decision about one rater (a rater id or an IP hash), newest wins; the log of who did what."""

    class Action(models.TextChoices):
        EXCLUDE = "exclude", "Exclude the rater's votes"
        INCLUDE = "include", "Re-include the rater's votes (never an outlier)"

    rater_key = models.CharField(max_length=64, db_index=True, help_text="A rater id or an IP hash")
    action = models.CharField(max_length=8, choices=Action.choices)
    note = models.CharField(max_length=300, blank=True)
    made_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"{self.action} {self.rater_key[:12]}"
