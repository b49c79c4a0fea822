"""The trivial objective whose cost is all platform overhead."""


def trivial(params: dict) -> float:
    return params["x"] ** 2


def ten_ms(params: dict) -> float:
    """Costs 10 ms (a sleep: a worker busy without using the CPU the head needs)."""
    import time

    time.sleep(0.01)
    return sum(v * v for v in params.values())
