"""Review the synthesized IAM: a readable report, a normalised snapshot, and the wildcard list.

``make iam-report`` writes ``cdk.out/iam-report.md``; ``make iam-snapshot`` rewrites
``tests/snapshots/iam.json``. Both read the template CloudFormation would deploy.
"""

import stacks  # noqa: F401 - before iam_review.synth loads the CDK: silences jsii's Node banner
