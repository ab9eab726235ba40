"""Rule-based rewards for tests, given to RLOOPolicy as ``reward_fns:NAME``."""


def count_practice(prompt: str, response: str) -> float:
    """The number of times the word 'Practice' appears: a reward a tiny policy can learn in a few steps."""
    return float(response.split().count("Practice"))


def length_words(prompt: str, response: str) -> float:
    """The number of words in the response."""
    return float(len(response.split()))


def count_practice_batch(prompts: list[str], responses: list[str]) -> list[float]:
    """``count_practice`` for a whole batch at once (``FunctionReward(batched=True)``)."""
    return [float(r.split().count("Practice")) for r in responses]
