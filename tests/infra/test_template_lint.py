"""cfn-lint on every synthesized template; the state machine definition validated as States Language."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from iam_review.review import resources_of
from tests.infra.conftest import IamSynth

ROOT = Path(__file__).resolve().parents[2]
ASL_VALIDATOR = ROOT / "node_modules" / ".bin" / "asl-validator"

#: cfn-lint rules switched off, each with its reason. Nothing else may warn.
IGNORED_CFN_LINT_RULES = {
    "W3005": (
        "CDK makes each Lambda function depend on its role's default policy and role explicitly, "
        "so the function never runs before its permissions exist; the role half is redundant with the GetAtt."
    ),
}


def test_cfn_lint_finds_nothing(iam_synth: IamSynth) -> None:
    cfn_lint = Path(sys.executable).with_name("cfn-lint")
    result = subprocess.run(
        [str(cfn_lint), "--format", "parseable", "--ignore-checks", *IGNORED_CFN_LINT_RULES, "--",
         iam_synth.stack.template_file],
        capture_output=True,
        text=True,
        check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


#: Stand-ins for what CloudFormation fills in at deploy time.
PLACEHOLDERS = {"AWS::Partition": "aws", "AWS::Region": "us-west-2", "AWS::AccountId": "123456789012"}
ARN_BY_TYPE = {
    "AWS::Lambda::Function": "arn:aws:lambda:us-west-2:123456789012:function:{}",
    "AWS::SNS::Topic": "arn:aws:sns:us-west-2:123456789012:{}",
    "AWS::SQS::Queue": "arn:aws:sqs:us-west-2:123456789012:{}",
    "AWS::IAM::Role": "arn:aws:iam::123456789012:role/{}",
    "AWS::StepFunctions::StateMachine": "arn:aws:states:us-west-2:123456789012:stateMachine:{}",
}


def resolve(template: Mapping[str, Any], value: Any) -> str:
    """Fn::Join / Ref / GetAtt with placeholder ARNs: the definition as Step Functions would receive it."""
    if isinstance(value, str):
        return value
    if "Fn::Join" in value:
        delimiter, parts = value["Fn::Join"]
        return str(delimiter).join(resolve(template, p) for p in parts)
    if "Ref" in value:
        ref = value["Ref"]
        if ref in PLACEHOLDERS:
            return PLACEHOLDERS[ref]
        return str(ref)
    if "Fn::GetAtt" in value:
        logical_id, attribute = value["Fn::GetAtt"]
        kind = template["Resources"][logical_id]["Type"]
        assert attribute == "Arn" and kind in ARN_BY_TYPE, (logical_id, attribute, kind)
        return ARN_BY_TYPE[kind].format(logical_id)
    raise AssertionError(f"unexpected intrinsic in the definition: {value}")


def test_state_machine_definition_is_valid_states_language(default_synth: IamSynth, tmp_path: Path) -> None:
    assert ASL_VALIDATOR.exists() or shutil.which("asl-validator"), (
        "asl-validator missing: run `make install`"
    )
    template = default_synth.template
    machines = list(resources_of(template, "AWS::StepFunctions::StateMachine"))
    assert machines
    for logical_id, machine in machines:
        definition = json.loads(resolve(template, machine["Properties"]["DefinitionString"]))
        path = tmp_path / f"{logical_id}.asl.json"
        path.write_text(json.dumps(definition))
        result = subprocess.run(
            [str(ASL_VALIDATOR), "--json-path", str(path)], capture_output=True, text=True, check=False
        )
        assert result.returncode == 0, result.stdout + result.stderr


def test_asl_validator_rejects_a_broken_definition(tmp_path: Path) -> None:
    """The validator really checks: a Next pointing nowhere fails."""
    path = tmp_path / "broken.asl.json"
    path.write_text(json.dumps({"StartAt": "A", "States": {"A": {"Type": "Pass", "Next": "Nowhere"}}}))
    result = subprocess.run([str(ASL_VALIDATOR), "--json-path", str(path)], capture_output=True, check=False)
    assert result.returncode != 0
