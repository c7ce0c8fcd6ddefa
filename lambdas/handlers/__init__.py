"""Thin Lambda handlers: Powertools decorators, event parsing, one call into bedrock_finetune."""
