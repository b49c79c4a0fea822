"""The trivial objective whose cost is all platform overhead."""


def trivial(params: dict) -> float:
    return params["x"] ** 2
