"""Evaluation: prompts, metrics, bootstrap intervals, the gate, cost, and the EvaluateCandidate use
case against moto S3 with fake Bedrock and runtime clients (their answers are chosen by the test)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import pytest

from bedrock_finetune import evaluation
from bedrock_finetune.catalog import CLAUDE_3_HAIKU
from bedrock_finetune.errors import BedrockQuotaExceeded, QuotaWaitExpired
from bedrock_finetune.evaluation import (
    EvaluationFailed,
    aggregate,
    bootstrap_ci,
    decide,
    evaluate_candidate,
    exact_match,
    format_ok,
    parse_judgement,
    rouge_l,
    token_f1,
)
from bedrock_finetune.evaluation_config import EvaluationConfig
from bedrock_finetune.evaluation_set import parse_prompts, prompt_from_record
from bedrock_finetune.lineage import TAG_STACK
from bedrock_finetune.naming import evaluation_deployment_name
from bedrock_finetune.run_ref import RunRef
from bedrock_finetune.settings import EvaluationSettings

NOVA = "amazon.nova-lite-v1:0:300k"
BUCKET = "data-bucket"
RUN = RunRef(bucket=BUCKET, key="datasets/bot/train.jsonl", run="bot", version_id="v1")
EXECUTION = "arn:aws:states:us-west-2:123456789012:execution:sm:run-1"
MODEL = f"arn:aws:bedrock:us-west-2:123456789012:custom-model/{NOVA}/new"
OLD = f"arn:aws:bedrock:us-west-2:123456789012:custom-model/{NOVA}/old"
LINE_DEPLOYMENT = "arn:aws:bedrock:us-west-2:123456789012:custom-model-deployment/line"
PT = "arn:aws:bedrock:us-west-2:123456789012:provisioned-model/line"
TOPIC = "arn:aws:sns:us-west-2:123456789012:fine-tuning"


# ---- prompts ----


def test_training_format_record_gives_its_last_assistant_turn_as_reference() -> None:
    record = {
        "system": "Reply in JSON.",
        "messages": [{"role": "user", "content": "Parse: a=1"}, {"role": "assistant", "content": '{"a": 1}'}],
    }
    prompt = prompt_from_record(record, 1)
    assert prompt.reference == '{"a": 1}'
    assert prompt.text == "Parse: a=1"
    assert prompt.system == "Reply in JSON."
    assert prompt.messages == ({"role": "user", "content": [{"text": "Parse: a=1"}]},)


def test_converse_format_and_prompt_shape_are_read_alike() -> None:
    converse = {
        "schemaVersion": "bedrock-conversation-2024",
        "system": [{"text": "S"}],
        "messages": [
            {"role": "user", "content": [{"text": "Q"}]},
            {"role": "assistant", "content": [{"text": "A"}]},
        ],
    }
    simple = {"prompt": "Q", "system": "S", "reference": "A", "category": "math"}
    a, b = prompt_from_record(converse, 1), prompt_from_record(simple, 2)
    assert (a.text, a.system, a.reference) == (b.text, b.system, b.reference) == ("Q", "S", "A")
    assert b.category == "math"


@pytest.mark.parametrize(
    ("record", "problem"),
    [
        ({"prompt": ""}, "non-empty"),
        ({"prompt": "q", "answer": "x"}, "unknown key"),
        ({"messages": [{"role": "assistant", "content": "x"}]}, "end with a user turn"),
        ({"text": "q"}, "neither"),
        ([1], "not a JSON object"),
    ],
)
def test_bad_records_say_what_is_wrong(record: Any, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        prompt_from_record(record, 3)


def test_parse_prompts_names_the_bad_line() -> None:
    with pytest.raises(ValueError, match="line 2"):
        parse_prompts(['{"prompt": "q", "reference": "a"}', "{not json"])


def test_sample_is_seeded_and_keeps_file_order() -> None:
    prompts = parse_prompts(json.dumps({"prompt": f"q{i}", "reference": "a"}) for i in range(50))
    first = evaluation.sample(prompts, 10, seed="line")
    assert first == evaluation.sample(prompts, 10, seed="line")
    assert [int(p.id) for p in first] == sorted(int(p.id) for p in first)
    assert evaluation.sample(prompts, 100, seed="line") == prompts


# ---- metrics ----


def test_exact_match_ignores_case_and_spacing_only() -> None:
    assert exact_match("  The  Answer ", "the answer") == 1.0
    assert exact_match("the answer.", "the answer") == 0.0


def test_token_f1_is_the_harmonic_mean_of_word_precision_and_recall() -> None:
    # 2 common words; precision 2/3, recall 2/4 -> F1 = 4/7
    assert token_f1("red green blue", "red green black white") == pytest.approx(4 / 7)
    assert token_f1("", "") == 1.0
    assert token_f1("x", "") == 0.0


def test_rouge_l_rewards_word_order() -> None:
    assert rouge_l("a b c d", "a b c d") == 1.0
    # LCS of (a c b d) and (a b c d) is 3 words: F = 3/4
    assert rouge_l("a c b d", "a b c d") == pytest.approx(0.75)
    assert token_f1("a c b d", "a b c d") == 1.0


def test_format_check_only_when_declared() -> None:
    assert format_ok('{"a": 1}', "json") == 1.0
    assert format_ok("Answer: a 1", "json") == 0.0
    assert format_ok("anything", "none") is None


def test_bootstrap_interval_is_seeded_and_brackets_the_mean() -> None:
    values = [0.0, 1.0] * 30
    low, high = bootstrap_ci(values, resamples=500, seed="s")
    assert (low, high) == bootstrap_ci(values, resamples=500, seed="s")
    assert low < 0.5 < high
    assert bootstrap_ci([0.7] * 10) == pytest.approx((0.7, 0.7))


# ---- the gate ----


def _agg(mean: float) -> dict[str, Any]:
    return {"token_f1": {"mean": mean, "ci95": [mean - 0.04, mean + 0.04], "n": 120}}


def test_gate_promotes_a_candidate_not_worse_and_says_it_in_one_line() -> None:
    decision = decide(_agg(0.82), _agg(0.79), EvaluationConfig(), 120)
    assert decision.passed
    assert decision.summary == (
        "token_f1: candidate 0.82 [0.78, 0.86] vs current 0.79 [0.75, 0.83] on 120 prompts: promoted"
    )


def test_gate_keeps_a_candidate_worse_by_more_than_the_margin() -> None:
    within = decide(_agg(0.78), _agg(0.80), EvaluationConfig(gate_margin=0.05), 120)
    beyond = decide(_agg(0.70), _agg(0.80), EvaluationConfig(gate_margin=0.05), 120)
    assert within.passed
    assert not beyond.passed
    assert "below the current model's 0.8000 by more than the margin 0.05" in beyond.why
    assert beyond.summary.endswith(": kept")


def test_gate_keeps_a_candidate_below_the_floor_even_when_better() -> None:
    decision = decide(_agg(0.5), _agg(0.4), EvaluationConfig(gate_floor=0.6), 10)
    assert not decision.passed
    assert "below the floor 0.6" in decision.why


def test_judge_score_is_rescaled_and_its_reasoning_kept() -> None:
    score, reasoning = parse_judgement("Reasoning: matches the total but not the date.\nScore: 4")
    assert score == 0.75
    assert reasoning == "matches the total but not the date."
    assert parse_judgement("I cannot grade this")[0] is None


# ---- the use case ----


def _settings(policy: str = "wait", **config: Any) -> EvaluationSettings:
    return EvaluationSettings(
        base_model_id=NOVA,
        stack_tag="arn:aws:cloudformation:us-west-2:123456789012:stack/S/1",
        chars_per_token=4.0,
        evaluation=EvaluationConfig(**{"format": "json", "calls_per_invocation": 4, **config}),
        policy=policy,
        max_wait_seconds=3600,
        cap_seconds=600,
        topic_arn=TOPIC,
    )


class FakeRuntime:
    """Converse: the answers each model gives, by model id (the reference when ``good``)."""

    def __init__(self, good: set[str]) -> None:
        self.good = good
        self.calls: list[str] = []

    def converse(self, **params: Any) -> dict[str, Any]:
        model = params["modelId"]
        self.calls.append(model)
        question = params["messages"][-1]["content"][0]["text"]
        answer = json.dumps({"q": question}) if model in self.good else "no idea"
        return {
            "output": {"message": {"role": "assistant", "content": [{"text": answer}]}},
            "usage": {"inputTokens": 10, "outputTokens": 5},
        }


class FakeBedrock:
    """The deployment and throughput calls the evaluation makes, recorded."""

    def __init__(self, deployment_polls: int = 1, quota_refusals: int = 0) -> None:
        self.deployments: dict[str, dict[str, Any]] = {}
        self.polls_left = deployment_polls
        self.quota_refusals = quota_refusals
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def get_custom_model_deployment(self, customModelDeploymentIdentifier: str) -> dict[str, Any]:
        from botocore.exceptions import ClientError

        found = self.deployments.get(customModelDeploymentIdentifier)
        if found is None:
            raise ClientError({"Error": {"Code": "ResourceNotFoundException"}}, "GetCustomModelDeployment")
        self.polls_left -= 1
        found["status"] = "Active" if self.polls_left <= 0 else "Creating"
        return found

    def create_custom_model_deployment(self, **params: Any) -> dict[str, Any]:
        from botocore.exceptions import ClientError

        self.calls.append(("create", params))
        if self.quota_refusals > 0:
            self.quota_refusals -= 1
            error = {"Code": "ServiceQuotaExceededException", "Message": "deployments per account: 2"}
            raise ClientError({"Error": error}, "CreateCustomModelDeployment")
        arn = "arn:aws:bedrock:us-west-2:123456789012:custom-model-deployment/temp"
        self.deployments[params["modelDeploymentName"]] = {
            "customModelDeploymentArn": arn,
            "status": "Creating",
        }
        return {"customModelDeploymentArn": arn}

    def delete_custom_model_deployment(self, **params: Any) -> dict[str, Any]:
        self.calls.append(("delete", params))
        return {}

    def update_provisioned_model_throughput(self, **params: Any) -> dict[str, Any]:
        self.calls.append(("update", params))
        return {}

    def get_provisioned_model_throughput(self, **params: Any) -> dict[str, Any]:
        return {"provisionedModelArn": params["provisionedModelId"]}

    def delete_provisioned_model_throughput(self, **params: Any) -> dict[str, Any]:
        self.calls.append(("delete-pt", params))
        return {}


@pytest.fixture
def s3(aws: None) -> Any:
    client = boto3.client("s3", region_name="us-west-2")
    client.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "us-west-2"})
    return client


def _upload(s3: Any, name: str, count: int) -> None:
    body = "\n".join(
        json.dumps({"prompt": f"q{i}", "reference": json.dumps({"q": f"q{i}"})}) for i in range(count)
    )
    s3.put_object(Bucket=BUCKET, Key=f"datasets/bot/{name}", Body=body.encode())


def _until_done(task: dict[str, Any], *clients: Any, settings: EvaluationSettings) -> list[dict[str, Any]]:
    steps = []
    for _ in range(50):
        steps.append(evaluate_candidate(*clients, RUN, task=task, settings=settings))
        if steps[-1]["done"]:
            return steps
    raise AssertionError("the evaluation never finished")


def test_on_demand_candidate_is_scored_on_its_own_deployment_then_promoted_and_the_deployment_deleted(
    s3: Any,
) -> None:
    # Given an on-demand line's first version and 6 evaluation prompts the candidate answers right
    _upload(s3, "evaluation.jsonl", 6)
    bedrock = FakeBedrock(deployment_polls=2)
    temp = "arn:aws:bedrock:us-west-2:123456789012:custom-model-deployment/temp"
    runtime = FakeRuntime(good={temp})
    plan = {"mode": "on_demand", "action": "create", "modelArn": MODEL, "endpointArn": None}
    task = {"phase": "both", "serving": plan, "executionArn": EXECUTION}

    # When the state machine calls the task until it is done
    steps = _until_done(task, bedrock, runtime, s3, settings=_settings())

    # Then it waited for the temporary deployment, scored in bounded steps, and deleted the deployment
    assert steps[0]["waiting"] and not steps[0]["done"]
    assert [s["scored"] for s in steps if not s["waiting"]] == [4, 8, 12]
    assert len(runtime.calls) == 12 and set(runtime.calls) == {temp, "amazon.nova-lite-v1:0"}
    create = next(p for c, p in bedrock.calls if c == "create")
    assert create["modelDeploymentName"] == evaluation_deployment_name(RUN.line, RUN.identity)
    assert {"key": TAG_STACK, "value": _settings().stack_tag} in create["tags"]
    assert ("delete", {"customModelDeploymentIdentifier": temp}) in bedrock.calls
    last = steps[-1]
    assert last["passed"] and last["outcome"] == "promoted"
    assert last["summary"].startswith("token_f1: candidate 1.00 [1.00, 1.00] vs current 0.00")
    doc = json.loads(s3.get_object(Bucket=BUCKET, Key="reports/bot/evaluation.json")["Body"].read())
    assert doc["aggregates"]["candidate"]["format"]["mean"] == 1.0
    assert doc["cost"]["candidate"]["calls"] == 6 and doc["cost"]["candidate"]["inputTokens"] == 60
    assert "not published" in doc["costEstimate"]["candidate"]["text"]
    assert len(doc["worst"]) == 5 and doc["worst"][0]["reference"]


def test_provisioned_candidate_worse_than_current_is_swapped_back(s3: Any) -> None:
    # Given a provisioned line whose current model answers right, and a candidate that does not
    _upload(s3, "validation.jsonl", 3)
    bedrock = FakeBedrock()
    runtime = FakeRuntime(good=set())
    plan = {
        "mode": "provisioned",
        "action": "update",
        "modelArn": MODEL,
        "endpointArn": PT,
        "previousModelArn": OLD,
    }
    settings = _settings()

    # When the current model is scored before the swap (it answers right then) ...
    runtime.good = {PT}
    _until_done(
        {"phase": "current", "serving": plan, "executionArn": EXECUTION},
        bedrock,
        runtime,
        s3,
        settings=settings,
    )
    # ... and the candidate after it (the same endpoint now answers wrong)
    runtime.good = set()
    endpoint = {"endpointArn": PT, "previousModelArn": OLD, "mode": "provisioned"}
    steps = _until_done(
        {"phase": "candidate", "serving": plan, "endpoint": endpoint, "executionArn": EXECUTION},
        bedrock,
        runtime,
        s3,
        settings=settings,
    )

    # Then the candidate is kept, and the line's throughput serves the previous model again
    assert steps[-1]["passed"] is False and steps[-1]["outcome"] == "kept"
    assert ("update", {"provisionedModelId": PT, "desiredModelId": OLD}) in bedrock.calls
    # And a retry of the finished step changes nothing again
    again = evaluate_candidate(
        bedrock,
        runtime,
        s3,
        RUN,
        task={"phase": "candidate", "serving": plan, "endpoint": endpoint, "executionArn": EXECUTION},
        settings=settings,
    )
    assert again["outcome"] == "kept"
    assert sum(1 for c, _ in bedrock.calls if c == "update") == 1


class LambdaClock:
    """The Lambda's remaining time, in seconds: each Converse call takes ``per_call`` of it."""

    def __init__(self, left: float, per_call: float, runtime: FakeRuntime) -> None:
        self.left, self.per_call, self.runtime = left, per_call, runtime
        self.calls_seen = 0

    def __call__(self) -> float:
        spent = (len(self.runtime.calls) - self.calls_seen) * self.per_call
        self.calls_seen, self.left = len(self.runtime.calls), self.left - spent
        return self.left


def _current_step(runtime: FakeRuntime, s3: Any, time_left: Any, **config: Any) -> dict[str, Any]:
    plan = {"mode": "provisioned", "action": "update", "modelArn": MODEL, "endpointArn": PT}
    return evaluate_candidate(
        FakeBedrock(), runtime, s3, RUN,
        task={"phase": "current", "serving": plan, "executionArn": EXECUTION},
        settings=_settings(**config), time_left=time_left,
    )  # fmt: skip


def test_a_step_scores_every_prompt_while_the_lambda_has_time(s3: Any) -> None:
    # Given 42 prompts, no count bound, and a Lambda with 15 minutes, each call taking 2 seconds
    _upload(s3, "validation.jsonl", 42)
    runtime = FakeRuntime(good=set())
    clock = LambdaClock(900, 2, runtime)
    # When the current model is scored
    step = _current_step(runtime, s3, clock, calls_per_invocation=4000)
    # Then one step scores them all (one state-machine round instead of one per 40 calls)
    assert (step["done"], step["scored"], len(runtime.calls)) == (True, 42, 42)


def test_a_step_stops_while_it_keeps_the_reserve_and_twice_its_slowest_call(s3: Any) -> None:
    # Given 42 prompts and a Lambda with 200 s left, each call taking 40 s
    _upload(s3, "validation.jsonl", 42)
    runtime = FakeRuntime(good=set())
    # When a step scores
    step = _current_step(runtime, s3, LambdaClock(200, 40, runtime), calls_per_invocation=4000)
    # Then it stops once fewer than max(60 s, 2 x 40 s) are left: after 4 calls (40 s left), not done
    assert (step["done"], step["scored"]) == (False, 4)
    # And a step that starts with less than the reserve still makes one call (it always progresses)
    step = _current_step(runtime, s3, LambdaClock(10, 40, runtime), calls_per_invocation=4000)
    assert (step["done"], step["scored"]) == (False, 5)


def test_an_evaluation_that_needs_too_many_steps_fails_and_keeps_the_model(
    s3: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a Bedrock so slow that each step scores one prompt, and a cap of 3 steps
    monkeypatch.setattr(evaluation, "MAX_SCORING_STEPS", 3)
    _upload(s3, "validation.jsonl", 5)
    runtime = FakeRuntime(good=set())
    for _ in range(2):
        assert _current_step(runtime, s3, None, calls_per_invocation=1)["done"] is False
    # When the third step is not done either
    with pytest.raises(evaluation.EvaluationFailed, match=r"scoring took 3 steps .*\(3 answers scored\)"):
        _current_step(runtime, s3, None, calls_per_invocation=1)
    # Then the evaluation failed (the run's clean-up keeps the model; nothing more is called)


class FakeSns:
    def __init__(self) -> None:
        self.published: list[dict[str, Any]] = []

    def publish(self, **params: Any) -> dict[str, Any]:
        self.published.append(params)
        return {"MessageId": "m"}


def _both_step(bedrock: FakeBedrock, s3: Any, sns: FakeSns, policy: str = "wait") -> dict[str, Any]:
    plan = {"mode": "on_demand", "action": "create", "modelArn": MODEL, "endpointArn": None}
    return evaluate_candidate(
        bedrock, FakeRuntime(good=set()), s3, RUN,
        task={"phase": "both", "serving": plan, "executionArn": EXECUTION},
        settings=_settings(policy=policy), sns=sns,
    )  # fmt: skip


def test_a_temporary_deployment_refused_for_its_quota_waits_with_back_off_and_one_notice(s3: Any) -> None:
    # Given an on-demand line that evaluates, deployment_quota_policy = wait, and an account whose
    # deployments are taken for Bedrock's first 2 answers
    _upload(s3, "validation.jsonl", 3)
    bedrock, sns = FakeBedrock(quota_refusals=2), FakeSns()
    # When the evaluation asks for its temporary deployment
    first, second, created = (_both_step(bedrock, s3, sns) for _ in range(3))
    # Then it waits 2, then 4 minutes (the Wait for candidate deployment state reads waitSeconds) ...
    assert [(r["done"], r["waiting"], r["waitSeconds"]) for r in (first, second)] == [
        (False, True, 120),
        (False, True, 240),
    ]
    # ... then the deployment is created and polled as usual, the quota's wait forgotten
    assert (created["waiting"], created["waitSeconds"]) == (True, 30)
    assert [c for c, _ in bedrock.calls] == ["create"] * 3
    # And the run's people were told once, with Bedrock's words and the state to follow
    [notice] = sns.published
    assert notice["Subject"] == "[fine-tuning] bot: Bedrock's deployment quota is full, waiting"
    assert "the temporary deployment that scores the candidate" in notice["Message"]
    assert "deployments per account: 2" in notice["Message"]
    assert "after 1 h of waiting (max_deployment_wait_hours)" in notice["Message"]


def test_a_temporary_deployment_refused_for_its_quota_fails_at_once_under_the_fail_policy(s3: Any) -> None:
    _upload(s3, "validation.jsonl", 3)
    with pytest.raises(BedrockQuotaExceeded, match="The configured policy is to fail"):
        _both_step(FakeBedrock(quota_refusals=1), s3, FakeSns(), policy="fail")


def test_a_quota_that_stays_full_fails_the_evaluation_after_max_deployment_wait_hours(s3: Any) -> None:
    # Given deployments that stay taken, and at most 1 h of waiting
    _upload(s3, "validation.jsonl", 3)
    bedrock, sns = FakeBedrock(quota_refusals=10**6), FakeSns()
    waits = []
    with pytest.raises(QuotaWaitExpired) as expired:
        for _ in range(20):
            waits.append(_both_step(bedrock, s3, sns)["waitSeconds"])
    # Then the waits add up to the hour, and the error says nothing was served and the model is kept
    assert sum(waits) == 3600
    assert "waited 1 h for a quota and gave up" in str(expired.value)
    assert f"the custom model is kept: {MODEL}" in str(expired.value)
    assert len(sns.published) == 1


def test_a_run_without_prompts_is_not_evaluated_and_says_why(s3: Any) -> None:
    plan = {"mode": "on_demand", "action": "create", "modelArn": MODEL, "endpointArn": None}
    result = evaluate_candidate(
        FakeBedrock(),
        FakeRuntime(set()),
        s3,
        RUN,
        task={"phase": "both", "serving": plan, "executionArn": EXECUTION},
        settings=_settings(),
    )
    assert result["done"] and result["passed"] and not result["evaluated"]
    assert "neither evaluation.jsonl nor validation.jsonl" in result["summary"]


def test_the_judge_is_never_the_candidate(s3: Any) -> None:
    _upload(s3, "evaluation.jsonl", 2)
    plan = {"mode": "provisioned", "action": "create", "modelArn": MODEL, "endpointArn": PT}
    with pytest.raises(EvaluationFailed, match="never judges itself"):
        evaluate_candidate(
            FakeBedrock(),
            FakeRuntime(set()),
            s3,
            RUN,
            task={
                "phase": "candidate",
                "serving": plan,
                "endpoint": {"endpointArn": PT},
                "executionArn": EXECUTION,
            },
            settings=_settings(judge_model_id=PT),
        )


def test_aggregate_leaves_out_metrics_without_values() -> None:
    results = [{"answers": {"candidate": {"scores": {"token_f1": 1.0, "format": None}}}}]
    agg = aggregate(results, "candidate", EvaluationConfig(bootstrap_resamples=10))
    assert set(agg) == {"token_f1"}


# ---- the evaluation file's rules (file "evaluation" of the validation report) ----


def _evaluation_issues(
    tmp_path: Any, lines: list[str], model_id: str = CLAUDE_3_HAIKU
) -> list[tuple[str, int | None]]:
    from bedrock_finetune.catalog import resolve_model
    from bedrock_finetune.dataset import LocalFile
    from bedrock_finetune.evaluation_set import check_evaluation_file

    path = tmp_path / "evaluation.jsonl"
    path.write_text("\n".join(lines) + "\n")
    issues = check_evaluation_file(LocalFile(path), resolve_model(model_id))
    assert all(i.file == "evaluation" for i in issues)
    return [(str(i.code), i.line) for i in issues]


def test_evaluation_file_in_either_shape_is_valid(tmp_path: Any) -> None:
    claude = {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}
    lines = [json.dumps(claude), json.dumps({"prompt": "q", "reference": "a", "category": "c"})]
    assert _evaluation_issues(tmp_path, lines) == []


def test_evaluation_file_errors_use_the_validators_codes(tmp_path: Any) -> None:
    nova = {
        "schemaVersion": "bedrock-conversation-2024",
        "messages": [{"role": "user", "content": [{"text": "q"}]}],
    }
    lines = [
        "{not json",
        json.dumps({"prompt": "q", "answer": "a"}),
        json.dumps({"prompt": "  "}),
        json.dumps(nova),
        json.dumps(["q"]),
        json.dumps({"prompt": "q", "reference": 3}),
    ]
    assert _evaluation_issues(tmp_path, lines) == [
        ("INVALID_JSON", 1),
        ("UNKNOWN_KEY", 2),
        ("EMPTY_CONTENT", 3),
        ("WRONG_FORMAT", 4),
        ("NOT_AN_OBJECT", 5),
        ("INVALID_TYPE", 6),
    ]


def test_evaluation_file_holds_at_most_1000_records(tmp_path: Any) -> None:
    lines = [json.dumps({"prompt": f"q{i}"}) for i in range(1001)]
    assert _evaluation_issues(tmp_path, lines) == [("TOO_MANY_RECORDS", None)]


def test_evaluation_file_errors_make_the_run_invalid(tmp_path: Any) -> None:
    from bedrock_finetune.catalog import resolve_model
    from bedrock_finetune.dataset import LocalFile, validate_run
    from bedrock_finetune.evaluation_set import add_to_report, check_evaluation_file

    sample = Path(__file__).resolve().parents[2] / "datasets" / "json-mode"
    model = resolve_model(CLAUDE_3_HAIKU)
    report = validate_run(
        LocalFile(sample / "train.jsonl"), LocalFile(sample / "validation.jsonl"), None, model
    )
    assert report.valid
    bad = tmp_path / "evaluation.jsonl"
    bad.write_text("{not json\n")
    add_to_report(report, check_evaluation_file(LocalFile(bad), model))
    assert not report.valid
    assert report.to_dict()["error_counts"] == {"INVALID_JSON": 1}


# ---- finetune report ----


def test_report_shows_aggregates_and_the_worst_prompts_beside_the_reference() -> None:
    from finetune.report_cmd import summarize_evaluation

    results = [
        {"id": str(i), "prompt": f"question {i}", "reference": f"answer {i}",
         "answers": {"candidate": {"text": "wrong" if i == 2 else f"answer {i}",
                                   "scores": {"token_f1": 0.0 if i == 2 else 1.0}},
                     "current": {"text": f"answer {i}", "scores": {"token_f1": 1.0}}}}
        for i in range(1, 4)
    ]  # fmt: skip
    config = EvaluationConfig(bootstrap_resamples=50)
    aggregates = {role: aggregate(results, role, config) for role in ("candidate", "current")}
    decision = decide(aggregates["candidate"], aggregates["current"], config, 3)
    doc = {
        "status": "done", "metric": "token_f1", "promptCount": 3, "source": "s3://b/datasets/x/evaluation.jsonl",
        "targets": {"candidate": {"label": "the candidate"}, "current": {"label": "the base model"}},
        "aggregates": aggregates, "results": results,
        "decision": {"passed": decision.passed, "summary": decision.summary, "why": decision.why},
    }  # fmt: skip
    lines = summarize_evaluation(evaluation.reported(doc))
    assert lines[0] == decision.summary and decision.summary.endswith(": kept")
    assert any(
        line.startswith("token_f1") and "0.67 [" in line and "1.00 [1.00, 1.00]" in line for line in lines
    )
    worst = lines.index("worst prompts by token_f1 (candidate against the reference):")
    assert lines[worst + 1] == "  #2  candidate 0.00  current 1.00"
    assert lines[worst + 2 : worst + 6] == [
        "    prompt:    question 2",
        "    reference: answer 2",
        "    candidate: wrong",
        "    current:   answer 2",
    ]


def test_the_judge_grades_each_answer_and_its_reasoning_is_kept(s3: Any) -> None:
    # Given a judge that grades the candidate 5 and the base model 2
    _upload(s3, "evaluation.jsonl", 2)
    judge = "amazon.nova-pro-v1:0"
    runtime = FakeRuntime(good={PT})
    real = runtime.converse

    def converse(**params: Any) -> dict[str, Any]:
        if params["modelId"] != judge:
            return real(**params)
        text = params["messages"][0]["content"][0]["text"]
        grade = 5 if '{"q"' in text.split("<answer>")[1] else 2
        runtime.calls.append(judge)
        return {"output": {"message": {"content": [{"text": f"Reasoning: graded.\nScore: {grade}"}]}},
                "usage": {"inputTokens": 100, "outputTokens": 8}}  # fmt: skip

    runtime.converse = converse  # type: ignore[method-assign]
    plan = {"mode": "provisioned", "action": "create", "modelArn": MODEL, "endpointArn": PT}
    settings = _settings(judge_model_id=judge, metric="judge", calls_per_invocation=100)
    task = {"phase": "current", "serving": plan, "executionArn": EXECUTION}
    _until_done(task, FakeBedrock(), runtime, s3, settings=settings)
    task = {**task, "phase": "candidate", "endpoint": {"endpointArn": PT}}
    [result] = _until_done(task, FakeBedrock(), runtime, s3, settings=settings)

    # Then the judge's grades decide, rescaled to 0-1, each with its reasoning
    assert result["summary"].startswith("judge: candidate 1.00 [1.00, 1.00] vs current 0.25 [0.25, 0.25]")
    doc = json.loads(s3.get_object(Bucket=BUCKET, Key="reports/bot/evaluation.json")["Body"].read())
    answer = doc["results"][0]["answers"]["candidate"]
    assert answer["scores"]["judge"] == 1.0 and answer["judgeReasoning"] == "graded."
    assert doc["cost"]["judge"]["calls"] == 4
    assert "judge" in doc["costEstimate"]


def test_the_evaluations_history_events_fit_in_what_the_polling_budget_leaves() -> None:
    from stacks.config import EVENTS_PER_POLL, EVENTS_PER_STATE, HISTORY_EVENT_LIMIT, POLLING_EVENT_BUDGET

    events = evaluation.MAX_DEPLOYMENT_POLLS * EVENTS_PER_POLL + evaluation.MAX_SCORING_STEPS * (
        EVENTS_PER_STATE["Task"] + EVENTS_PER_STATE["Choice"]
    )
    assert events == 1_780
    assert events < (HISTORY_EVENT_LIMIT - POLLING_EVENT_BUDGET) // 2


# ---- configuration ----


def test_evaluation_keys_are_read_with_their_defaults() -> None:
    from stacks.application import cdk_json_context
    from stacks.config import load_config

    config = load_config(cdk_json_context()).evaluation
    assert config == EvaluationConfig()
    configured = load_config(
        cdk_json_context(
            evaluation_format="json",
            evaluation_metric="rouge_l",
            evaluation_gate_margin=0.02,
            evaluation_gate_floor=0.5,
            evaluation_sample_size=40,
        )
    ).evaluation
    assert (configured.format, configured.metric, configured.gate_margin, configured.gate_floor) == (
        "json",
        "rouge_l",
        0.02,
        0.5,
    )
    assert configured.sample_size == 40


@pytest.mark.parametrize(
    ("context", "message"),
    [
        ({"evaluation_format": "xml"}, "evaluation_format = 'xml'"),
        ({"evaluation_metric": "bleu"}, "evaluation_metric = 'bleu'"),
        ({"evaluation_metric": "judge"}, "needs evaluation_judge_model_id"),
        ({"evaluation_metric": "format"}, "needs evaluation_format"),
        ({"evaluation_gate_margin": 2}, "evaluation_gate_margin"),
        ({"evaluation_sample_size": 5000}, "evaluation_sample_size"),
        (
            {"evaluation_judge_model_id": f"arn:aws:bedrock:us-west-2:123456789012:custom-model/{NOVA}/x"},
            "may be the candidate",
        ),
    ],
)
def test_bad_evaluation_keys_fail_synth_naming_the_key(context: dict[str, Any], message: str) -> None:
    from stacks.application import cdk_json_context
    from stacks.config import ConfigError, load_config

    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace("?", r"\?")):
        load_config(cdk_json_context(**context))
