"""Shared by several functions through a layer (importable as /opt/python is on Lambda)."""


def format_cents(cents: int, currency: str = "USD") -> str:
    return f"{cents / 100:,.2f} {currency}"
