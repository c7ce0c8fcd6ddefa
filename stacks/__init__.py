"""The CDK app: configuration, the stack, and one construct per capability."""
