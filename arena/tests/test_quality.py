"""Vote quality: every exclusion reason, moderation of both sides, staff decisions, outlier raters."""

import datetime as dt
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from arena import services
from arena.leaderboard.services import ratings_refresh
from arena.models import Battle, RaterDecision, RatingSnapshot, Response, Vote
from arena.quality import rules as quality
from arena.quality.identity import find_identity_words
from serving.local_models import LOCAL_MODELS
from tests.factories import make_finished_battle, make_model

pytestmark = pytest.mark.django_db


def vote_on(battle: Battle, winner: str = "model_a", ip: str = "") -> Vote:
    return services.battle_vote(battle_id=battle.public_id, rater_id=battle.rater_id, winner=winner, ip_hash=ip)


def finished(seconds_ago: float, **kwargs) -> Battle:
    battle = make_finished_battle(**kwargs)
    Response.objects.filter(turn__battle=battle).update(finished_at=timezone.now() - dt.timedelta(seconds=seconds_ago))
    return battle


class TestVoteExclusions:
    def test_a_stopped_side_leaves_the_vote_out(self):
        vote = vote_on(make_finished_battle(states=("done", "cancelled")))
        assert vote.exclusion == Vote.Exclusion.SIDE_INCOMPLETE and not Vote.objects.counted().exists()

    def test_an_empty_answer_leaves_the_vote_out(self):
        vote = vote_on(make_finished_battle(answers=("Paris.", "  ")))
        assert vote.exclusion == Vote.Exclusion.SIDE_INCOMPLETE

    def test_a_vote_faster_than_the_minimum_after_the_answers_is_left_out(self, settings):
        settings.ARENA_MIN_VOTE_SECONDS = 3.0
        fast = vote_on(finished(0.5))
        slow = vote_on(finished(10.0))
        assert fast.exclusion == Vote.Exclusion.TOO_FAST and 0.4 < fast.decision_s < 3.0
        assert slow.exclusion == "" and slow.decision_s >= 10.0
        assert list(Vote.objects.counted()) == [slow]

    def test_prompts_repeated_beyond_the_cap_are_left_out(self, settings):
        settings.ARENA_PROMPT_REPEAT_CAP = 2
        votes = [vote_on(make_finished_battle(prompt=p)) for p in ("Tell me a joke", "tell me  A JOKE", "Tell me a joke")]
        other = vote_on(make_finished_battle(prompt="Another prompt"))
        assert [v.exclusion for v in votes] == ["", "", Vote.Exclusion.REPEATED_PROMPT]
        assert other.exclusion == "" and votes[0].prompt_hash == votes[1].prompt_hash != other.prompt_hash

    def test_the_moderation_word_list_checks_both_sides(self, settings):
        # FastChat issue 3834: only side A was moderated. Here the word is only in side B.
        settings.ARENA_MODERATION_WORDS = ["forbiddenword"]
        flagged = vote_on(make_finished_battle(answers=("A clean answer.", "Some forbiddenword here.")))
        clean = vote_on(make_finished_battle(answers=("A clean answer.", "Another clean one.")))
        assert flagged.exclusion == Vote.Exclusion.MODERATION and clean.exclusion == ""

    def test_an_identity_leak_naming_a_served_model_is_flagged(self, settings):
        settings.ARENA_IDENTITY_WORDS = []
        model = make_model(public_name="zorbix-7b-chat", engine_model_id="acme/Zorbix-7B-Chat", organization="Acme AI")
        vote = vote_on(make_finished_battle(model_a=model, answers=("I am Zorbix2, here to help.", "Hello.")))
        assert vote.identity_leak and "zorbix" in vote.identity_words

    def test_the_identity_list_holds_every_served_model(self):
        parent = make_model(public_name="gemma-3-270m", engine_model_id="gemma-3-270m", organization="Google")
        make_model(public_name="gemma-3-270m-sft-j4", engine_model_id="gemma-3-270m-sft-j4", parent=parent,
                   organization="Google")
        words = quality.identity_words()
        assert {"gemma-3-270m", "gemma-3-270m-sft-j4", "gemma", "google"} <= set(words)

    def test_the_local_models_own_descriptions_are_flagged(self):
        # SmolLM2-135M does not name itself when asked (measured: "I'm Ember…"), so the check uses
        # how the shipped models describe themselves, with the rows `make run` would register.
        for local in LOCAL_MODELS.values():
            make_model(public_name=local.served_name, engine_model_id=local.served_name,
                       organization=local.organization, description=local.description)
        words = quality.identity_words()
        for local in LOCAL_MODELS.values():
            assert find_identity_words([local.description], words), local.key
        for text in ("I am SmolLM2", "GPT-4o", "Qwen2.5", "Gemma3", "smollm2-135m-instruct"):
            assert find_identity_words([text], words), text


class FakeModeration(BaseHTTPRequestHandler):
    """A fake OpenAI-compatible /moderations endpoint (the HTTP boundary): flags inputs with "attack"."""

    inputs: list = []
    status = 200

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        FakeModeration.inputs.append(body["input"])
        payload = {"id": "modr-1", "model": body.get("model", ""),
                   "results": [{"flagged": "attack" in text, "categories": {}, "category_scores": {}}
                               for text in body["input"]]}
        data = json.dumps(payload).encode()
        self.send_response(FakeModeration.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def fake_moderation(settings):
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeModeration)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    FakeModeration.inputs, FakeModeration.status = [], 200
    settings.ARENA_MODERATION_URL = f"http://127.0.0.1:{server.server_port}/v1"
    yield FakeModeration
    server.shutdown()


class TestModerationEndpoint:
    def test_both_sides_and_the_prompt_are_sent_and_a_flag_on_side_b_counts(self, fake_moderation):
        vote = vote_on(make_finished_battle(prompt="Hi", answers=("Fine.", "Plan an attack.")))
        assert vote.exclusion == Vote.Exclusion.MODERATION
        assert sorted(fake_moderation.inputs[0]) == sorted(["Hi", "Fine.", "Plan an attack."])

    def test_an_endpoint_failure_lets_the_vote_count(self, fake_moderation, caplog):
        fake_moderation.status = 500
        vote = vote_on(make_finished_battle(answers=("Fine.", "Plan an attack.")))
        assert vote.exclusion == "" and "moderation endpoint failed" in caplog.text


class TestStaffDecisions:
    def test_excluding_and_re_including_a_rater_is_logged_and_applied(self, django_capture_on_commit_callbacks):
        staff = User.objects.create_user("auditor", is_staff=True)
        first = vote_on(make_finished_battle(rater_id="bad"))
        with django_capture_on_commit_callbacks() as callbacks:
            quality.rater_decide(rater_key="bad", action="exclude", user=staff, note="scripted")
        assert [c.__name__ for c in callbacks] == ["ratings_refresh_soon"], "a change queues a refit"
        first.refresh_from_db()
        assert first.exclusion == Vote.Exclusion.STAFF_EXCLUDED
        later = vote_on(make_finished_battle(rater_id="bad"))
        assert later.exclusion == Vote.Exclusion.STAFF_EXCLUDED, "new votes of an excluded rater stay out"
        quality.rater_decide(rater_key="bad", action="include", user=staff)
        assert Vote.objects.counted().count() == 2
        log = list(RaterDecision.objects.values_list("made_by__username", "action", "rater_key"))
        assert log == [("auditor", "include", "bad"), ("auditor", "exclude", "bad")]

    def test_re_including_never_restores_a_vote_left_out_for_its_own_reason(self):
        vote = vote_on(make_finished_battle(rater_id="r", states=("done", "cancelled")))
        quality.rater_decide(rater_key="r", action="include")
        vote.refresh_from_db()
        assert vote.exclusion == Vote.Exclusion.SIDE_INCOMPLETE

    def test_an_ip_hash_can_be_excluded(self):
        vote = vote_on(make_finished_battle(rater_id="fresh-1"), ip="ip-hash-1")
        quality.rater_decide(rater_key="ip-hash-1", action="exclude")
        vote.refresh_from_db()
        assert vote.exclusion == Vote.Exclusion.STAFF_EXCLUDED


def cast(a, b, winner, rater, ip=""):
    battle = make_finished_battle(model_a=a, model_b=b, rater_id=rater)
    Battle.objects.filter(pk=battle.pk).update(ip_hash=ip)
    return vote_on(battle, winner, ip)


class TestOutliersRefresh:

    def test_the_outlier_raters_votes_are_marked_and_staff_can_re_include_them(self, settings):
        settings.ARENA_OUTLIER_Z, settings.ARENA_OUTLIER_MIN_VOTES = 3.0, 15
        strong, weak = make_model(), make_model()
        for n in range(60):  # honest raters: the strong model wins 5 in 6
            cast(strong, weak, "model_b" if n % 6 == 0 else "model_a", f"honest-{n % 10}")
        for n in range(20):  # one address, a new rater id each time, always for the weak model
            cast(strong, weak, "model_b", f"script-{n}", ip="attacker")
        assert quality.outliers_refresh() == 20
        marked = Vote.objects.filter(exclusion=Vote.Exclusion.OUTLIER_RATER)
        assert set(marked.values_list("ip_hash", flat=True)) == {"attacker"}
        quality.rater_decide(rater_key="attacker", action="include")
        quality.outliers_refresh()
        assert not Vote.objects.filter(exclusion=Vote.Exclusion.OUTLIER_RATER).exists()

    def test_marks_are_cleared_when_the_rule_is_turned_off(self, settings):
        settings.ARENA_OUTLIER_Z, settings.ARENA_OUTLIER_MIN_VOTES = 3.0, 15
        strong, weak = make_model(), make_model()
        for n in range(40):
            cast(strong, weak, "model_a", f"honest-{n}")
        for _ in range(20):
            cast(strong, weak, "model_b", "script")
        quality.outliers_refresh()
        assert Vote.objects.filter(exclusion=Vote.Exclusion.OUTLIER_RATER).count() == 20
        settings.ARENA_OUTLIER_Z = 0
        quality.outliers_refresh()
        assert Vote.objects.counted().count() == 60

    def test_a_key_that_fed_the_board_is_still_caught(self, settings):
        """Three models; the script's 30 votes for the weakest would drag a board fitted on every
        vote towards it (the old rule's blind spot); against the board without them they are outliers."""
        settings.ARENA_OUTLIER_Z, settings.ARENA_OUTLIER_MIN_VOTES = 4.0, 20
        top, middle, weak = make_model(), make_model(), make_model()
        for n in range(60):
            cast(top, middle, "model_b" if n % 4 == 0 else "model_a", f"honest-{n % 20}", ip=f"ip-{n % 20}")
            cast(middle, weak, "model_b" if n % 5 == 0 else "model_a", f"honest-{n % 20}", ip=f"ip-{n % 20}")
        for n in range(30):
            cast(top if n % 2 else middle, weak, "model_b", f"script-{n}", ip="attacker")
        quality.outliers_refresh()
        marked = Vote.objects.filter(exclusion=Vote.Exclusion.OUTLIER_RATER)
        assert set(marked.values_list("ip_hash", flat=True)) == {"attacker"} and marked.count() == 30


class TestKeyShare:
    def test_votes_beyond_one_keys_share_of_a_model_are_left_out_and_come_back_when_others_vote(self, settings):
        settings.ARENA_KEY_SHARE_CAP, settings.ARENA_KEY_SHARE_MIN_VOTES = 0.2, 2
        one, two = make_model(), make_model()
        for n in range(8):
            cast(one, two, "model_a" if n % 2 else "model_b", f"honest-{n}")
        heavy = [cast(one, two, "model_a" if n % 2 else "model_b", "heavy", ip="heavy-ip") for n in range(6)]
        quality.outliers_refresh()
        # others = 8 on each model → the key keeps max(2, ⌊0.2·8/0.8⌋) = 2 votes: its first two.
        capped = Vote.objects.filter(exclusion=Vote.Exclusion.KEY_SHARE)
        assert set(capped.values_list("pk", flat=True)) == {v.pk for v in heavy[2:]}
        for n in range(12):
            cast(one, two, "model_a" if n % 2 else "model_b", f"later-{n}")
        quality.outliers_refresh()  # others = 20 → 5 kept
        assert set(capped.values_list("pk", flat=True)) == {heavy[5].pk}

    def test_staff_re_inclusion_exempts_a_key_from_the_cap(self, settings):
        settings.ARENA_KEY_SHARE_CAP, settings.ARENA_KEY_SHARE_MIN_VOTES = 0.2, 2
        one, two = make_model(), make_model()
        for n in range(8):
            cast(one, two, "model_a", f"honest-{n}")
        for _ in range(6):
            cast(one, two, "model_a", "heavy")
        quality.outliers_refresh()
        assert Vote.objects.filter(exclusion=Vote.Exclusion.KEY_SHARE).count() == 4
        quality.rater_decide(rater_key="heavy", action="include")
        quality.outliers_refresh()
        assert Vote.objects.counted().count() == 14

    def test_the_cap_is_counted_in_the_snapshot(self, settings):
        settings.ARENA_KEY_SHARE_CAP, settings.ARENA_KEY_SHARE_MIN_VOTES = 0.2, 2
        settings.ARENA_LEADERBOARD_ROUNDS = settings.ARENA_LEADERBOARD_STYLE_ROUNDS = 2
        one, two = make_model(), make_model()
        for n in range(8):
            cast(one, two, "model_a", f"honest-{n}")
        for _ in range(6):
            cast(one, two, "model_b", "heavy")
        ratings_refresh(force=True)
        assert RatingSnapshot.objects.latest().data["excluded"]["key_share"] == 4


def test_the_ratings_refresh_marks_outliers_before_the_snapshot(settings):
    settings.ARENA_OUTLIER_Z, settings.ARENA_OUTLIER_MIN_VOTES = 3.0, 15
    settings.ARENA_LEADERBOARD_ROUNDS = settings.ARENA_LEADERBOARD_STYLE_ROUNDS = 2
    strong, weak = make_model(), make_model()
    for n in range(40):
        cast(strong, weak, "model_a", f"honest-{n}")
    for _ in range(20):
        cast(strong, weak, "model_b", "script")
    ratings_refresh(force=True)
    assert RatingSnapshot.objects.latest().data["excluded"]["outlier_rater"] == 20
