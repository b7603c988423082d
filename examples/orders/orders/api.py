"""Prices an order. A dotted handler (``orders.api.handler``) that imports from a layer."""

import logging
import os

from common.money import format_cents  # from the layer: layers/common/python/common/money.py

logger = logging.getLogger()
logger.setLevel(os.environ.get("LOG_LEVEL", "INFO"))

TAX_RATE = float(os.environ.get("TAX_RATE", "0"))


def handler(event, context):
    items = event.get("items")
    if not items:
        # Raised, not returned: the caller gets X-Amz-Function-Error: Unhandled.
        raise ValueError("an order needs at least one item")
    subtotal = sum(int(item["price_cents"]) * int(item.get("qty", 1)) for item in items)
    tax = round(subtotal * TAX_RATE)
    logger.info("priced %d items for %s", len(items), event.get("customer", "anonymous"))
    return {
        "subtotal": format_cents(subtotal, os.environ.get("CURRENCY", "USD")),
        "tax": format_cents(tax, os.environ.get("CURRENCY", "USD")),
        "total_cents": subtotal + tax,
        "remaining_ms": context.get_remaining_time_in_millis(),
    }
