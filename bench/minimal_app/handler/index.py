"""The minimal app's function (synthesized as an asset, never run)."""


def handler(event: dict, context: object) -> dict:
    return event
