"""Render CloudFormation values (``Fn::GetAtt``, ``Fn::Join``, ``Ref``...) as text a reviewer can read.

Two renderings:

* :meth:`Renderer.readable`: ``arn:aws:s3:::<DataBucket>/datasets/*``, ``<BedrockServiceRole>``,
  ``${AWS::AccountId}``; a resource of the stack is named by its logical ID without CDK's hash suffix.
* :func:`nag_flat`: exactly how cdk-nag flattens a value (``<DataBucketE6B0FAA8.Arn>/datasets/*``),
  which is how its acknowledgments name resources.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

#: CDK appends an 8-character hash of the construct path to every logical ID it generates.
_LOGICAL_ID_HASH = re.compile(r"(?<=.)[0-9A-F]{8}$")
#: Asset hashes (S3 keys of code and templates) are SHA-256 hex digests.
ASSET_HASH = re.compile(r"\b[0-9a-f]{64}\b")
_SUB_VARIABLE = re.compile(r"\$\{([^}!][^}]*)\}")

#: Pseudo parameters: the partition is shown as ``aws`` (the reader's partition); the others stay named.
PSEUDO_PARAMETERS = {
    "AWS::Partition": "aws",
    "AWS::URLSuffix": "amazonaws.com",
    "AWS::AccountId": "${AWS::AccountId}",
    "AWS::Region": "${AWS::Region}",
    "AWS::StackName": "${AWS::StackName}",
    "AWS::StackId": "${AWS::StackId}",
    "AWS::NoValue": "",
}


def strip_hash(logical_id: str) -> str:
    """``DataBucketE6B0FAA8`` -> ``DataBucket``: the name without the part that changes with the path."""
    return _LOGICAL_ID_HASH.sub("", logical_id)


def as_list(value: Any) -> list[Any]:
    """IAM fields hold a value or a list of values; always a list."""
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


class Renderer:
    """Readable rendering of values in one template; knows each logical ID's resource type."""

    def __init__(self, resources: Mapping[str, Mapping[str, Any]]) -> None:
        self._types = {logical_id: str(r.get("Type", "")) for logical_id, r in resources.items()}
        self._names = self._unique_names(list(resources))

    @staticmethod
    def _unique_names(logical_ids: list[str]) -> dict[str, str]:
        """Hash-free names, keeping the hash only where two resources would share a name."""
        stripped = [strip_hash(i) for i in logical_ids]
        return {
            logical_id: name if stripped.count(name) == 1 else logical_id
            for logical_id, name in zip(logical_ids, stripped, strict=True)
        }

    def name(self, logical_id: str) -> str:
        """The readable name of a resource (or parameter) of this template."""
        return self._names.get(logical_id, strip_hash(logical_id))

    def _get_att(self, logical_id: str, attribute: str) -> str:
        name = self.name(logical_id)
        if attribute == "Arn" and self._types.get(logical_id) == "AWS::S3::Bucket":
            return f"arn:aws:s3:::<{name}>"
        return f"<{name}>" if attribute == "Arn" else f"<{name}.{attribute}>"

    def _ref(self, target: str) -> str:
        if target in PSEUDO_PARAMETERS:
            return PSEUDO_PARAMETERS[target]
        return f"<{self.name(target)}>"

    def _sub(self, text: str, variables: Mapping[str, Any]) -> str:
        def replace(match: re.Match[str]) -> str:
            expression = match.group(1)
            if expression in variables:
                return self.readable(variables[expression])
            if "." in expression:
                logical_id, attribute = expression.split(".", 1)
                return self._get_att(logical_id, attribute)
            return self._ref(expression)

        return _SUB_VARIABLE.sub(replace, text)

    def readable(self, value: Any) -> str:
        """One value as text; never raw intrinsic JSON."""
        if isinstance(value, str):
            return value
        if isinstance(value, bool | int | float):
            return json.dumps(value)
        if isinstance(value, list):
            return ", ".join(self.readable(v) for v in value)
        if isinstance(value, Mapping) and len(value) == 1:
            (function, argument), *_ = value.items()
            rendered = self._intrinsic(str(function), argument)
            if rendered is not None:
                return rendered
        if isinstance(value, Mapping):
            return "{" + ", ".join(f"{k}: {self.readable(v)}" for k, v in value.items()) + "}"
        return str(value)

    def _intrinsic(self, function: str, argument: Any) -> str | None:
        """An intrinsic function as text, or None if ``function`` is not one."""
        rendered: str | None = None
        if function == "Ref":
            rendered = self._ref(str(argument))
        elif function == "Fn::GetAtt":
            logical_id, attribute = argument if isinstance(argument, list) else argument.split(".", 1)
            rendered = self._get_att(str(logical_id), str(attribute))
        elif function == "Fn::Join":
            delimiter, parts = argument
            rendered = str(delimiter).join(self.readable(p) for p in parts)
        elif function == "Fn::Sub":
            text, variables = (argument, {}) if isinstance(argument, str) else argument
            rendered = self._sub(str(text), variables)
        elif function == "Fn::ImportValue":
            rendered = f"<import {self.readable(argument)}>"
        elif function == "Fn::Select":
            index, items = argument
            rendered = f"<item {self.readable(index)} of {self.readable(items)}>"
        elif function == "Fn::Split":
            delimiter, text = argument
            rendered = f"<{self.readable(text)} split on {delimiter!r}>"
        elif function == "Fn::If":
            condition, when_true, when_false = argument
            rendered = f"<if {condition}: {self.readable(when_true)} else {self.readable(when_false)}>"
        return rendered

    def conditions(self, condition_block: Mapping[str, Any] | None) -> list[str]:
        """``StringEquals aws:SourceAccount = ${AWS::AccountId}``, one line per operator and key."""
        lines = []
        for operator, keys in (condition_block or {}).items():
            for key, values in keys.items():
                shown = " | ".join(self.readable(v) for v in as_list(values))
                lines.append(f"{operator} {key} = {shown}")
        return lines

    def principals(self, principal: Any) -> list[str]:
        """``Service bedrock.amazonaws.com``, ``AWS <BedrockServiceRole>``, ``*``."""
        if principal is None:
            return []
        if isinstance(principal, str):
            return [principal]
        lines: list[str] = []
        for kind, values in principal.items():
            lines.extend(f"{kind} {self.readable(v)}" for v in as_list(values))
        return lines


def readable_statement(renderer: Renderer, raw: Mapping[str, Any]) -> dict[str, Any]:
    """A statement with every CloudFormation value rendered as text, for :mod:`iam_review.evaluate`."""
    statement: dict[str, Any] = {k: raw[k] for k in ("Sid", "Effect") if k in raw}
    for element in ("Action", "NotAction", "Resource", "NotResource"):
        if element in raw:
            statement[element] = [renderer.readable(v) for v in as_list(raw[element])]
    if raw.get("Condition"):
        statement["Condition"] = {
            operator: {key: [renderer.readable(v) for v in as_list(values)] for key, values in keys.items()}
            for operator, keys in raw["Condition"].items()
        }
    return statement


def nag_flat(value: Any) -> str:
    """cdk-nag's ``flattenCfnReference``: how acknowledgments spell a resource."""
    flat: str
    if value is None:
        flat = ""
    elif isinstance(value, str):
        flat = value.replace("${", "<").replace("}", ">")
    elif isinstance(value, Mapping) and "Fn::Join" in value:
        delimiter, items = value["Fn::Join"]
        flat = str(delimiter).join(nag_flat(i) for i in items)
    elif isinstance(value, Mapping) and "Fn::Sub" in value:
        flat = nag_flat(value["Fn::Sub"])
    elif isinstance(value, Mapping) and "Fn::GetAtt" in value:
        resource, attribute = value["Fn::GetAtt"]
        flat = f"<{nag_flat(resource)}.{nag_flat(attribute)}>"
    elif isinstance(value, Mapping) and "Fn::ImportValue" in value:
        flat = nag_flat(value["Fn::ImportValue"])
    elif isinstance(value, Mapping) and "Ref" in value:
        flat = f"<{nag_flat(value['Ref'])}>"
    else:
        flat = json.dumps(value, separators=(",", ":"))
    return flat
