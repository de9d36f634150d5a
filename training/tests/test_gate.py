"""The gate before the arena: verdict parsing, per-prompt scores over both orders, the bootstrap
interval, holding and admitting a contestant, and a whole run judged by an LLM at a real local
vLLM endpoint (the reward-model judge runs in test_preference_methods, next to its training)."""

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from arena.leaderboard.selectors import board_get
from arena.leaderboard.services import snapshot_create
from arena.models import Contestant
from arena.pairing.contestants import contestant_hold
from serving.models import Endpoint, ServedModel
from tests.factories import make_model, make_vote
from tests.helpers import shared_data_file
from training import gate, services
from training.models import Checkpoint, Dataset, GateRun, Job


def test_the_last_verdict_label_counts_and_none_without_one():
    assert gate.parse_verdict("A is fine [[A>B]] ... My final verdict is: [[B>>A]]") == "B>>A"
    assert gate.parse_verdict("no idea") is None


def test_a_prompt_scores_over_both_orders_and_ignores_games_without_verdict():
    assert gate.prompt_score([{"new_is": "A", "verdict": "A>B"}, {"new_is": "B", "verdict": "A>>B"}]) == 0.5
    assert gate.prompt_score([{"new_is": "A", "verdict": "B>A"}, {"new_is": "B", "verdict": "B>A"}]) == 0.5
    assert gate.prompt_score([{"new_is": "A", "verdict": "A>B"}, {"new_is": "B", "verdict": "B>A"}]) == 1.0
    assert gate.prompt_score([{"new_is": "A", "verdict": None}, {"new_is": "B", "verdict": "A=B"}]) == 0.5
    assert gate.prompt_score([{"new_is": "A", "verdict": None}]) is None


def test_the_bootstrap_interval_holds_the_win_rate_and_narrows_with_more_prompts():
    rate, low, high = gate.win_rate_interval([1.0, 0.0, 1.0, 0.5] * 5)
    assert rate == 0.625 and low < rate < high
    _, low_more, high_more = gate.win_rate_interval([1.0, 0.0, 1.0, 0.5] * 50)
    assert high_more - low_more < high - low
    assert gate.win_rate_interval([]) == (None, None, None)
    assert gate.win_rate_interval([1.0] * 10) == (1.0, 1.0, 1.0)


def make_checkpoint(new: ServedModel, parent: ServedModel, tmp_path) -> Checkpoint:
    ServedModel.objects.filter(pk=new.pk).update(parent=parent, kind=ServedModel.Kind.LORA)
    new.refresh_from_db()
    path = tmp_path / "d.jsonl"
    path.write_text("{}\n")

    dataset = Dataset.objects.create(name="d", kind="sft", format="messages", source="upload", file=str(path))
    job = Job.objects.create(base_model=parent, method="sft", dataset=dataset, config={}, status="succeeded")
    return Checkpoint.objects.create(job=job, weights_dir="/a", base_model=parent, served_model=new)


@pytest.fixture
def gate_settings(settings):
    settings.ARENA_PROMPTS_DIR = shared_data_file("arena_prompts")
    settings.ARENA_GATE_MAX_TOKENS = 24
    settings.ARENA_GATE_JUDGE_MAX_TOKENS = 48
    return settings


@pytest.mark.django_db
def test_an_llm_judge_at_a_real_endpoint_judges_both_orders_and_the_job_page_shows_it(
        battle_models, gate_settings, tmp_path, vllm_url, client):
    new, parent = battle_models
    checkpoint = make_checkpoint(new, parent, tmp_path)
    judge_endpoint = Endpoint.objects.create(name="judge", base_url=f"{vllm_url}/v1", healthy=True)
    judge = ServedModel.objects.create(public_name="smollm2-judge", endpoint=judge_endpoint,
                                       engine_model_id="smollm2-135m-instruct")
    gate_settings.ARENA_GATE_JUDGE = "llm"
    gate_settings.ARENA_GATE_LLM_JUDGE = "smollm2-judge"
    gate_settings.ARENA_GATE_HOLD = True
    gate_settings.ARENA_GATE_MIN_WIN_RATE = 1.01  # nothing passes: the model must wait for an admin
    run = gate.gate_run(checkpoint, num_prompts=3)
    assert run.status == "done", run.error
    assert run.judge_kind == "llm" and run.judge_name == str(judge) and run.num_prompts == 3
    held_out = gate.held_out_prompts()
    assert [v["prompt"] for v in run.verdicts] == held_out[:3]
    for verdict in run.verdicts:
        assert verdict["new"] and verdict["old"]  # both models really answered
        assert [g["new_is"] for g in verdict["games"]] == ["A", "B"]  # both orders
        assert all(g["judgement"] for g in verdict["games"])  # the judge really answered
    if run.win_rate is not None:
        assert run.ci_low <= run.win_rate <= run.ci_high and run.passed is False
        assert Contestant.objects.get(served_model=new).sampling_weight == 0.0
    assert run.wins + run.ties + run.losses == sum(v["score"] is not None for v in run.verdicts)

    client.force_login(get_user_model().objects.create_superuser("boss", "", "pw-for-tests"))
    page = client.get(reverse("admin:training_job_change", args=[checkpoint.job_id])).content.decode()
    assert "Gate" in page and "smoke test of the mechanism, not a verdict" in page
    assert held_out[0][:40].replace("'", "&#x27;").replace('"', "&quot;") in page


@pytest.mark.django_db
def test_a_model_that_passes_is_admitted_and_no_judge_means_no_gate(battle_models, gate_settings, tmp_path):
    new, parent = battle_models
    checkpoint = make_checkpoint(new, parent, tmp_path)
    gate_settings.ARENA_GATE_JUDGE = "auto"  # no scorer and no LLM judge named: skipped, saying why
    gate_settings.ARENA_GATE_LLM_JUDGE = ""
    run = gate.gate_run(checkpoint)
    assert run.status == GateRun.Status.SKIPPED and "no judge" in run.error
    gate_settings.ARENA_GATE_HOLD = True

    contestant_hold(new)
    assert Contestant.objects.get(served_model=new).sampling_weight == 0.0
    gate._admit_or_hold(new, False)  # below the threshold: it keeps waiting
    assert Contestant.objects.get(served_model=new).sampling_weight == 0.0
    gate._admit_or_hold(new, True)
    assert Contestant.objects.get(served_model=new).sampling_weight == 1.0


@pytest.mark.django_db
def test_registering_a_contestant_queues_its_gate(battle_models, settings, tmp_path, broker_queue,
                                                  django_capture_on_commit_callbacks):
    new, parent = battle_models
    checkpoint = make_checkpoint(new, parent, tmp_path)
    settings.ARENA_GATE_JUDGE = "auto"
    with django_capture_on_commit_callbacks(execute=True):
        gate.gate_after_registration(checkpoint)
    assert [m["task"] for m in broker_queue("training")] == [gate.GATE_TASK]
    settings.ARENA_GATE_JUDGE = "off"
    with django_capture_on_commit_callbacks(execute=True):
        gate.gate_after_registration(checkpoint)
    assert broker_queue("training") == []
    assert services.JOB_RUN_TASK != gate.GATE_TASK


def leader_snapshot(leader: ServedModel, *others: ServedModel, wins: int = 3):
    """A real ratings snapshot after ``leader`` won ``wins`` votes and lost one against each of ``others``;
    it must top the overall board."""
    for other in others:
        for winner in ["model_a"] * wins + ["model_b"]:
            make_vote(leader, other, winner)
    snapshot = snapshot_create()
    assert board_get(snapshot.data, "overall")["board"]["rows"][0]["model"] == leader.public_name
    return snapshot


@pytest.mark.django_db
def test_the_gate_also_meets_the_leader_and_that_run_only_informs(battle_models, gate_settings, tmp_path, vllm_url,
                                                                  client):
    new, parent = battle_models
    checkpoint = make_checkpoint(new, parent, tmp_path)
    # the same weights behind two more endpoints: the leader, and the judge
    leader, _ = (ServedModel.objects.create(
        public_name=name, endpoint=Endpoint.objects.create(name=name, base_url=f"{vllm_url}/v1", healthy=True),
        engine_model_id="smollm2-135m-instruct", generation={"temperature": 0.0}) for name in ("smollm2-leader",
                                                                                                "smollm2-judge"))
    leader_snapshot(leader, parent)
    gate_settings.ARENA_GATE_JUDGE, gate_settings.ARENA_GATE_LLM_JUDGE = "llm", "smollm2-judge"
    gate_settings.ARENA_GATE_PROMPTS, gate_settings.ARENA_GATE_MAX_TOKENS = 2, 8
    gate_settings.ARENA_GATE_JUDGE_MAX_TOKENS = 16
    gate_settings.ARENA_GATE_VS_LEADER = True

    # alone, the leader run never admits a held model, whatever its result (the parent run decides)
    contestant_hold(new)
    run = gate.gate_run_vs_leader(checkpoint)
    assert run.status == "done", run.error
    assert run.opponent_role == "leader" and run.opponent == leader and run.num_prompts == 2
    assert all(v["new"] and v["old"] and len(v["games"]) == 2 for v in run.verdicts)
    assert Contestant.objects.get(served_model=new).sampling_weight == 0.0
    GateRun.objects.all().delete()

    # the worker's task: the parent comparison, then the leader's
    gate.gate_run_for(checkpoint.pk)
    parent_run, leader_run = GateRun.objects.order_by("created_at", "pk")
    assert (parent_run.opponent_role, parent_run.opponent, parent_run.status) == ("parent", parent, "done")
    assert (leader_run.opponent_role, leader_run.opponent, leader_run.status) == ("leader", leader, "done")

    client.force_login(get_user_model().objects.create_superuser("boss", "", "pw-for-tests"))
    for url in (reverse("admin:training_job_change", args=[checkpoint.job_id]),
                reverse("admin:training_checkpoint_change", args=[checkpoint.pk])):
        page = client.get(url).content.decode()
        assert page.index("vs parent") < page.index("vs leader")
        assert "only the comparison with the parent admits or holds the model" in page
        assert "smollm2-leader" in page


@pytest.mark.django_db
def test_the_leader_run_is_skipped_saying_why(tmp_path, settings):
    parent = make_model(public_name="base")
    new = make_model(public_name="base-sft-j1")
    checkpoint = make_checkpoint(new, parent, tmp_path)
    settings.ARENA_GATE_JUDGE = "llm"

    def skipped_because() -> str:
        run = gate.gate_run_vs_leader(checkpoint)
        assert (run.status, run.opponent_role, run.opponent) == ("skipped", "leader", None)
        return run.error

    assert skipped_because() == "no leaderboard yet (no ratings snapshot)"
    rival = make_model(public_name="rival")
    leader_snapshot(parent, rival)
    assert "is the parent" in skipped_because()
    leader_snapshot(new, parent, rival, wins=8)  # the new model's own wins put it on top
    assert skipped_because() == "the new model base-sft-j1 is the leader"
    leader_snapshot(rival, new, parent, wins=30)
    Endpoint.objects.filter(pk=rival.endpoint_id).update(healthy=False)
    assert skipped_because() == "the leader rival is not battle-ready (unhealthy, retired or on hold)"
    assert GateRun.objects.filter(opponent_role="leader", status="skipped").count() == 4
