"""The notification topic: KMS-encrypted, TLS-only, with the configured e-mail subscriptions."""

from __future__ import annotations

from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from constructs import Construct

from stacks.nag import acknowledge


class Notifications(Construct):
    """Where every run's outcome is published."""

    def __init__(
        self, scope: Construct, construct_id: str, *, key: kms.IKey, emails: tuple[str, ...]
    ) -> None:
        super().__init__(scope, construct_id)
        self.topic = sns.Topic(
            self,
            "Topic",
            display_name="Bedrock fine-tuning runs",
            master_key=key,
            enforce_ssl=True,
        )
        for email in emails:
            subscription = self.topic.add_subscription(subscriptions.EmailSubscription(email))
            acknowledge(
                subscription,
                "Serverless-SNSRedrivePolicy",
                "An e-mail copy of a run's outcome; the outcome itself stays in the execution history and "
                "the run's reports. A dead-letter queue for it would need its own customer-key queue "
                "whose key policy admits the SNS service.",
            )
