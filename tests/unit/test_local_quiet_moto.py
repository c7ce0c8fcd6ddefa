"""`finetune local` lists the resource types moto skips once, not on every later template parse."""

from __future__ import annotations

import logging
import warnings

import pytest

from finetune.local.cloud import _quiet_moto_template_parsing


def test_moto_skipped_resource_lines_are_dropped_and_other_moto_lines_kept(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Given the quieting the deploy installs (twice: a second deploy in the same process)
    _quiet_moto_template_parsing()
    _quiet_moto_template_parsing()
    moto_log = logging.getLogger("moto")
    assert len(moto_log.filters) == len(set(map(id, moto_log.filters)))

    # When moto re-parses the template and logs and warns about a skipped type, then logs something else
    with caplog.at_level(logging.WARNING, logger="moto"), warnings.catch_warnings(record=True) as caught:
        moto_log.warning("No Moto CloudFormation support for %s", "AWS::S3::BucketPolicy")
        warnings.warn(
            "Tried to parse AWS::S3::BucketPolicy but it's not supported by moto's CloudFormation"
            " implementation",
            UserWarning,
            stacklevel=1,
        )
        moto_log.warning("Something else went wrong")

    # Then only the other line is shown
    assert [r.getMessage() for r in caplog.records] == ["Something else went wrong"]
    assert caught == []
