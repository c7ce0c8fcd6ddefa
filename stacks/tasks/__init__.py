"""One construct per pipeline task: its function, settings, IAM statements and cdk-nag reasons."""

from stacks.tasks.approval import RequestApproval
from stacks.tasks.clean_up_ended_execution import CleanUpEndedExecution
from stacks.tasks.clean_up_failed_run import CleanUpFailedRun
from stacks.tasks.collect_training_results import CollectTrainingResults
from stacks.tasks.context import TaskContext
from stacks.tasks.evaluation import EvaluateCandidate
from stacks.tasks.job_wait import JobEnded, WaitForJobToEnd
from stacks.tasks.line_record import LineRecords
from stacks.tasks.notify import Notify
from stacks.tasks.serving import GetEndpointStatus, PlanServing, ServeModel, ServingInventory
from stacks.tasks.start_customization_job import StartCustomizationJob
from stacks.tasks.training_queue import TrainingQueue, TrainingQueueTable
from stacks.tasks.validate_dataset import ValidateDataset

__all__ = [
    "CleanUpEndedExecution",
    "CleanUpFailedRun",
    "CollectTrainingResults",
    "EvaluateCandidate",
    "GetEndpointStatus",
    "JobEnded",
    "LineRecords",
    "Notify",
    "PlanServing",
    "RequestApproval",
    "ServeModel",
    "ServingInventory",
    "StartCustomizationJob",
    "TaskContext",
    "TrainingQueue",
    "TrainingQueueTable",
    "ValidateDataset",
    "WaitForJobToEnd",
]
