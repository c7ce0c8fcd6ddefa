"""Review the synthesized IAM: a one-page summary, a readable report, a normalised snapshot.

``make iam-report`` writes ``cdk.out/iam-report.md`` (taking the same ``-c`` as ``cdk synth``);
``make iam-snapshot`` rewrites ``tests/snapshots/iam.json``. Both read the template CloudFormation would
deploy. :mod:`iam_review.evaluate` decides requests against policies for the report and the tests.
"""

import stacks  # noqa: F401 - before iam_review.synth loads the CDK: silences jsii's Node banner
