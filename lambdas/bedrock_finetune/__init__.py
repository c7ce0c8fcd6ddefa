"""Runtime code of the fine-tuning pipeline: domain modules shared by the Lambdas and the CLI.

Nothing here imports the CDK app, the CLI or the local emulation; this folder is the Lambda asset.
"""
