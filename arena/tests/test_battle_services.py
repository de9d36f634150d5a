import random
import threading

import pytest
from django.db import connection

from arena import services
from arena.models import Battle, Contestant, Response, Vote
from arena.pairing.contestants import contestant_of
from serving.models import ServedModel
from tests.factories import make_finished_battle, make_model


@pytest.mark.django_db
class TestBattleCreate:
    def test_it_pairs_two_distinct_battle_ready_models(self):
        models = [make_model() for _ in range(3)]
        battle = services.battle_create(rater_id="r", rng=random.Random(0))
        assert battle.model_a != battle.model_b
        assert {battle.model_a, battle.model_b} <= set(models)

    def test_unhealthy_and_inactive_models_are_never_offered(self):
        good_a, good_b = make_model(), make_model()
        make_model(active=False)
        sick = make_model()
        sick.endpoint.healthy = False
        sick.endpoint.save()
        for seed in range(30):
            battle = services.battle_create(rater_id="r", rng=random.Random(seed))
            assert {battle.model_a, battle.model_b} == {good_a, good_b}

    def test_fewer_than_two_models_is_a_clear_error(self):
        make_model()
        with pytest.raises(services.ArenaError) as err:
            services.battle_create(rater_id="r")
        assert err.value.code == "no_models"
        assert Battle.objects.count() == 0

    def test_zero_weights_still_pair(self):
        make_model(sampling_weight=0.0)
        make_model(sampling_weight=0.0)
        battle = services.battle_create(rater_id="r")
        assert battle.model_a != battle.model_b


@pytest.mark.django_db
class TestBattleTurnBegin:
    def setup_method(self):
        self.battle = Battle.objects.create(model_a=make_model(), model_b=make_model(), rater_id="me")

    def test_it_appends_the_prompt_to_both_sides_and_opens_two_pending_responses(self):
        plan = services.battle_turn_begin(battle_id=self.battle.public_id, rater_id="me", text="Hi there")
        self.battle.refresh_from_db()
        assert self.battle.conversation_a == [{"role": "user", "content": "Hi there"}]
        assert self.battle.conversation_b == self.battle.conversation_a
        assert plan.turn_index == 0
        assert Response.objects.filter(state="pending").count() == 2
        assert plan.messages["a"] == [{"role": "user", "content": "Hi there"}]

    @pytest.mark.parametrize(
        "text,code",
        [("", "empty_prompt"), ("   \n", "empty_prompt"), (None, "empty_prompt"), (42, "empty_prompt"),
         (["list"], "empty_prompt"), ("x" * 5000, "prompt_too_long")],
    )
    def test_bad_prompts_are_refused_and_change_nothing(self, text, code, settings):
        settings.ARENA_MAX_PROMPT_CHARS = 4000
        with pytest.raises(services.ArenaError) as err:
            services.battle_turn_begin(battle_id=self.battle.public_id, rater_id="me", text=text)
        assert err.value.code == code
        self.battle.refresh_from_db()
        assert self.battle.conversation_a == [] and Response.objects.count() == 0

    @pytest.mark.parametrize("battle_id", ["not-a-uuid", None, 12, "00000000-0000-0000-0000-000000000000"])
    def test_unknown_battles_are_refused(self, battle_id):
        with pytest.raises(services.ArenaError) as err:
            services.battle_turn_begin(battle_id=battle_id, rater_id="me", text="hi")
        assert err.value.code == "unknown_battle"

    def test_someone_elses_battle_looks_unknown(self):
        with pytest.raises(services.ArenaError) as err:
            services.battle_turn_begin(battle_id=self.battle.public_id, rater_id="intruder", text="hi")
        assert err.value.code == "unknown_battle"

    def test_a_second_prompt_waits_for_both_answers(self):
        services.battle_turn_begin(battle_id=self.battle.public_id, rater_id="me", text="one")
        with pytest.raises(services.ArenaError) as err:
            services.battle_turn_begin(battle_id=self.battle.public_id, rater_id="me", text="two")
        assert err.value.code == "busy"

    def test_the_turn_limit_is_enforced(self, settings):
        settings.ARENA_MAX_TURNS = 1
        plan = services.battle_turn_begin(battle_id=self.battle.public_id, rater_id="me", text="one")
        for side in "ab":
            services.battle_side_finish(response_id=plan.response_ids[side], state="done", content="ok")
        with pytest.raises(services.ArenaError) as err:
            services.battle_turn_begin(battle_id=self.battle.public_id, rater_id="me", text="two")
        assert err.value.code == "too_many_turns"

    def test_multi_turn_conversations_alternate_roles(self):
        for text in ("one", "two"):
            plan = services.battle_turn_begin(battle_id=self.battle.public_id, rater_id="me", text=text)
            for side in "ab":
                services.battle_side_finish(response_id=plan.response_ids[side], state="done", content=f"{side}:{text}")
        self.battle.refresh_from_db()
        assert [m["role"] for m in self.battle.conversation_a] == ["user", "assistant", "user", "assistant"]
        assert self.battle.conversation_b[3] == {"role": "assistant", "content": "b:two"}
        assert self.battle.turn_total == 2


@pytest.mark.django_db
class TestBattleVote:
    def test_it_records_the_vote_locks_the_battle_and_reveals(self):
        battle = make_finished_battle(rater_id="me")
        vote = services.battle_vote(battle_id=battle.public_id, rater_id="me", winner="model_a")
        battle.refresh_from_db()
        assert vote.winner == "model_a" and battle.status == "voted"
        reveal = services.battle_reveal(battle)
        assert reveal["model_a"]["name"] == battle.model_a.public_name
        assert reveal["model_a"]["standing"] is None  # no board yet: not "rank 1", not a rating
        with pytest.raises(services.ArenaError) as err:
            services.battle_turn_begin(battle_id=battle.public_id, rater_id="me", text="more")
        assert err.value.code == "battle_closed"

    @pytest.mark.parametrize("winner", ["a", "A", "", None, "tie(bothbad)", ["model_a"], "model_c"])
    def test_bad_winners_are_refused(self, winner):
        battle = make_finished_battle(rater_id="me")
        with pytest.raises(services.ArenaError) as err:
            services.battle_vote(battle_id=battle.public_id, rater_id="me", winner=winner)
        assert err.value.code == "bad_vote"
        assert Vote.objects.count() == 0

    def test_a_second_vote_is_refused(self):
        battle = make_finished_battle(rater_id="me")
        services.battle_vote(battle_id=battle.public_id, rater_id="me", winner="tie")
        with pytest.raises(services.ArenaError) as err:
            services.battle_vote(battle_id=battle.public_id, rater_id="me", winner="model_b")
        assert err.value.code == "already_voted"
        assert Vote.objects.get().winner == "tie"

    def test_votes_on_unknown_empty_or_unfinished_battles_are_refused(self):
        with pytest.raises(services.ArenaError) as err:
            services.battle_vote(battle_id="nope", rater_id="me", winner="tie")
        assert err.value.code == "unknown_battle"
        empty = Battle.objects.create(model_a=make_model(), model_b=make_model(), rater_id="me")
        with pytest.raises(services.ArenaError) as err:
            services.battle_vote(battle_id=empty.public_id, rater_id="me", winner="tie")
        assert err.value.code == "nothing_to_vote"
        unfinished = make_finished_battle(rater_id="me", states=("done", "pending"))
        with pytest.raises(services.ArenaError) as err:
            services.battle_vote(battle_id=unfinished.public_id, rater_id="me", winner="tie")
        assert err.value.code == "not_finished"
        assert Vote.objects.count() == 0

    def test_an_answer_naming_a_model_flags_the_vote(self):
        battle = make_finished_battle(rater_id="me", answers=("As an OpenAI model, I think so.", "Sure."))
        vote = services.battle_vote(battle_id=battle.public_id, rater_id="me", winner="model_b")
        assert vote.identity_leak and vote.identity_words == ["openai"]
        assert not Vote.objects.counted().exists()

    def test_the_users_own_prompt_does_not_flag_the_vote(self):
        battle = make_finished_battle(rater_id="me", prompt="Are you Claude or ChatGPT?", answers=("No.", "I'm a model."))
        vote = services.battle_vote(battle_id=battle.public_id, rater_id="me", winner="model_a")
        assert not vote.identity_leak
        assert Vote.objects.counted().count() == 1

    def test_an_errored_side_is_stored_but_not_counted(self):
        battle = make_finished_battle(rater_id="me", states=("done", "error"))
        vote = services.battle_vote(battle_id=battle.public_id, rater_id="me", winner="model_a")
        assert vote.side_error and not Vote.objects.counted().exists()

    def test_votes_use_up_a_new_models_boost(self):
        boosted = make_model(boost_weight=5.0, boost_votes_left=2)
        battle = make_finished_battle(rater_id="me", model_a=boosted)
        assert contestant_of(boosted).effective_weight() == 5.0
        services.battle_vote(battle_id=battle.public_id, rater_id="me", winner="model_a")
        assert contestant_of(ServedModel.objects.get(pk=boosted.pk)).boost_votes_left == 1
        # The other side has no contestant row (the defaults): the vote creates none.
        assert not Contestant.objects.filter(served_model=battle.model_b).exists()


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_votes_record_exactly_one():
    boosted = make_model(boost_weight=5.0, boost_votes_left=2)
    battle = make_finished_battle(rater_id="me", model_a=boosted)
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def vote(winner: str) -> None:
        barrier.wait()
        try:
            services.battle_vote(battle_id=battle.public_id, rater_id="me", winner=winner)
            outcomes.append("ok")
        except services.ArenaError as exc:
            outcomes.append(exc.code)
        finally:
            connection.close()

    threads = [threading.Thread(target=vote, args=(w,)) for w in ("model_a", "model_b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["already_voted", "ok"]
    assert Vote.objects.filter(battle=battle).count() == 1
    assert contestant_of(ServedModel.objects.get(pk=boosted.pk)).boost_votes_left == 1  # the refused vote used nothing
