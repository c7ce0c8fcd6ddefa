"""The pipeline's custom CloudWatch metrics: one namespace, one service, every name the stack charts.

The functions publish them with Powertools for AWS Lambda (Python) Metrics, which writes CloudWatch
embedded metric format (EMF) to the log and adds the ``service`` dimension to every metric
(https://docs.powertools.aws.dev/lambda/python/latest/core/metrics/). A CloudWatch metric is identified
by its namespace, name and *whole* set of dimensions, so the dimensions written here are part of the
contract: the alarms and the dashboard (``stacks/observability.py``) ask for exactly these.

The endpoint and approval metrics are emitted by a scheduled inventory Lambda (built by the serving
work): at least once per :data:`INVENTORY_PERIOD_SECONDS`, each as one value for the whole stack
(every line together), with no dimension but ``service``. Until it exists they have no data, and
their alarms treat missing data as not breaching.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

#: ``POWERTOOLS_METRICS_NAMESPACE`` of every function of the stack.
NAMESPACE = "BedrockFineTuning"
#: ``POWERTOOLS_SERVICE_NAME`` of every function; Powertools adds it as the ``service`` dimension.
SERVICE = "bedrock-finetune"
SERVICE_DIMENSION = "service"

# ---- ValidateDataset ----
#: Errors found in a rejected dataset, one value per error code (the count of that code's errors).
VALIDATION_ERRORS = "ValidationErrors"
#: The dimension of :data:`VALIDATION_ERRORS`: the public validation code (``dataset.Code``).
CODE_DIMENSION = "Code"

# ---- CollectTrainingResults: one value per run, dimension ``run`` ----
FINAL_TRAINING_LOSS = "FinalTrainingLoss"
FINAL_VALIDATION_LOSS = "FinalValidationLoss"
BEST_VALIDATION_LOSS = "BestValidationLoss"
RUN_DIMENSION = "run"

# ---- the scheduled inventory (serving): dimension ``service`` only ----
#: How many lines' endpoints are serving past their time to live (alarm when above 0).
ENDPOINTS_PAST_TTL = "EndpointsPastTtl"
#: How many throughput purchases have waited for an approval for more than a day (alarm when above 0).
APPROVALS_WAITING_OVER_A_DAY = "ApprovalsWaitingOverADay"
#: How many lines have an endpoint in service.
ENDPOINTS_IN_SERVICE = "EndpointsInService"
#: The estimated cost per hour of every endpoint in service together, in US dollars.
ENDPOINT_HOURLY_COST_ESTIMATE = "EndpointHourlyCostEstimate"
# ---- TrainingQueue: one value per "Take a training slot", dimension ``service`` only ----
#: Runs in line for a training slot (waiting, or still being validated), as the last Take saw it.
QUEUE_LENGTH = "QueueLength"
#: Training slots held (customization jobs the pipeline runs), as the last Take saw it.
TRAINING_SLOTS_IN_USE = "TrainingSlotsInUse"

#: The inventory runs at least this often; alarms and widgets on its metrics aggregate over it.
INVENTORY_PERIOD_SECONDS = 3600


class MetricSink(Protocol):
    """Where a use case records a metric; the handler layer passes one backed by Powertools."""

    def count(self, name: str, value: int, dimensions: Mapping[str, str]) -> None:
        """Record ``value`` (a count) of metric ``name`` with these dimensions (besides ``service``)."""
