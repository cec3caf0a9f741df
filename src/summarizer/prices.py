"""Estimated cost of a run from token counts: USD per million prompt and completion tokens, by model.

Requests sent through a provider's Batch API (`summarizer batch --via batch-file`) are priced with
`batch_prices`: half of each online price, as the OpenAI Batch API charges.

The built-in table is a rough guide; SUMMARIZER_PRICES (JSON) or `prices` in the config file
override or extend it, e.g. {"my-model": {"input": 0.2, "output": 0.8}} or {"my-model": [0.2, 0.8]}.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from .errors import ConfigError
from .schema import Usage

# USD per 1M tokens (prompt, completion), list prices; check your provider's page before trusting a total.
BUILTIN_PRICES: dict[str, tuple[float, float]] = {
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4o": (2.50, 10.00),
    "gpt-4.1": (2.00, 8.00),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1-nano": (0.10, 0.40),
    "deepseek-chat": (0.27, 1.10),
    "qwen-plus": (0.40, 1.20),
}

# The OpenAI Batch API bills input and output tokens at half the synchronous price.
BATCH_DISCOUNT = 0.5


def load_prices(override: Mapping[str, Any] | str | None = None) -> dict[str, tuple[float, float]]:
    """The built-in table with `override` (a mapping or its JSON text) laid over it.

    Raises:
        ConfigError: the override is not JSON, or a price is not a pair of non-negative numbers.
    """
    prices = dict(BUILTIN_PRICES)
    if override in (None, ""):
        return prices
    if isinstance(override, str):
        try:
            override = json.loads(override)
        except json.JSONDecodeError as exc:
            raise ConfigError(
                f'prices: not valid JSON ({exc.msg}); example: {{"gpt-4o-mini": {{"input": 0.15, "output": 0.6}}}}'
            ) from exc
    if not isinstance(override, Mapping):
        raise ConfigError("prices: expected an object of model name -> {input, output} USD per 1M tokens")
    for model, price in override.items():
        pair = (price.get("input"), price.get("output")) if isinstance(price, Mapping) else price
        if (
            not isinstance(pair, list | tuple)
            or len(pair) != 2
            or not all(isinstance(p, int | float) and not isinstance(p, bool) and p >= 0 for p in pair)
        ):
            raise ConfigError(f"prices: {model!r} needs input and output USD per 1M tokens, got {price!r}")
        prices[str(model)] = (float(pair[0]), float(pair[1]))
    return prices


def price_for(model: str | None, prices: Mapping[str, tuple[float, float]]) -> tuple[float, float] | None:
    """Exact name first, then the longest known prefix (dated snapshots such as gpt-4o-mini-2024-07-18)."""
    if not model:
        return None
    if model in prices:
        return prices[model]
    prefixes = [name for name in prices if model.startswith(name + "-")]
    return prices[max(prefixes, key=len)] if prefixes else None


def estimate_cost(model: str | None, usage: Usage, prices: Mapping[str, tuple[float, float]]) -> float | None:
    """USD for `usage`; 0 when no request was made; None when the model's price is unknown."""
    if usage.prompt_tokens == 0 and usage.completion_tokens == 0:
        return 0.0
    price = price_for(model, prices)
    if price is None:
        return None
    return (usage.prompt_tokens * price[0] + usage.completion_tokens * price[1]) / 1_000_000


def batch_prices(prices: Mapping[str, tuple[float, float]]) -> dict[str, tuple[float, float]]:
    """The same table at Batch API prices (each online price times BATCH_DISCOUNT)."""
    return {model: (pair[0] * BATCH_DISCOUNT, pair[1] * BATCH_DISCOUNT) for model, pair in prices.items()}
