"""What each request asks for: a weighted mix of functions, each with its payloads.

``--function NAME[=WEIGHT][@PAYLOAD_FILE]`` adds a function to the mix. A payload file holds
one JSON event, or a JSON list of events that requests take in turn. Payloads are encoded
once, up front; the hot path only picks one.

With an echo check (``--verify-echo FIELD``) each request's event gets a unique token in
``FIELD``; a handler that returns the event (or at least that field) proves that every
response belongs to its own request. The token is spliced into the encoded JSON object
instead of re-encoding the event for every request.
"""

from __future__ import annotations

import bisect
import itertools
import json
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class WorkloadError(ValueError):
    pass


def read_payloads(path: Path) -> tuple[bytes, ...]:
    """One event, or a list of events, from a JSON file, each encoded as compact JSON."""
    try:
        document = json.loads(Path(path).read_text())
    except OSError as exc:
        raise WorkloadError(f"cannot read payload file {path}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise WorkloadError(f"payload file {path} is not JSON: {exc}") from None
    events = document if isinstance(document, list) else [document]
    if not events:
        raise WorkloadError(f"payload file {path} holds an empty list")
    return tuple(encode(event) for event in events)


def encode(event: Any) -> bytes:
    return json.dumps(event, separators=(",", ":")).encode()


@dataclass(frozen=True)
class Target:
    """One function of the mix."""

    function: str
    weight: float = 1.0
    payloads: tuple[bytes, ...] = (b"{}",)

    def __post_init__(self) -> None:
        if not self.function:
            raise WorkloadError("a function name is needed")
        if not self.weight > 0:
            raise WorkloadError(f"{self.function}: weight must be > 0")
        if not self.payloads:
            raise WorkloadError(f"{self.function}: no payload")

    @staticmethod
    def parse(text: str, default_payloads: tuple[bytes, ...] = (b"{}",)) -> Target:
        """``NAME[=WEIGHT][@PAYLOAD_FILE]`` — ``=`` and ``@`` never occur in names or ARNs."""
        spec, at, path = text.partition("@")
        name, eq, weight = spec.partition("=")
        try:
            value = float(weight) if eq else 1.0
        except ValueError:
            raise WorkloadError(f"--function {text}: weight {weight!r} is not a number") from None
        payloads = read_payloads(Path(path)) if at else default_payloads
        return Target(name.strip(), value, payloads)


def with_token(payload: bytes, key: str, token: str) -> bytes:
    """``payload`` (a JSON object) with ``"key": "token"`` as its last member, so it wins over
    a member of the same name already there (JSON decoders keep the last duplicate)."""
    member = (json.dumps(key) + ":" + json.dumps(token)).encode()
    head = payload.strip()[:-1].rstrip()
    return head + (member if head == b"{" else b"," + member) + b"}"


@dataclass
class Mix:
    """Picks the function and payload of each request: functions at random by weight (seeded,
    so a run can be repeated), each function's payloads in turn."""

    targets: Sequence[Target]
    seed: int | None = None
    verify_field: str | None = None
    _rng: random.Random = field(init=False, repr=False)
    _cumulative: list[float] = field(init=False, repr=False)
    _turns: list[Iterator[bytes]] = field(init=False, repr=False)
    _counter: Iterator[int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if not self.targets:
            raise WorkloadError("the mix needs at least one function")
        if self.verify_field is not None:
            for target in self.targets:
                for payload in target.payloads:
                    if not payload.lstrip().startswith(b"{"):
                        raise WorkloadError(
                            f"--verify-echo needs JSON objects as events; {target.function} has {payload[:40]!r}"
                        )
        self._rng = random.Random(self.seed)
        self._cumulative = list(itertools.accumulate(t.weight for t in self.targets))
        self._turns = [itertools.cycle(t.payloads) for t in self.targets]
        self._counter = itertools.count()

    @property
    def functions(self) -> list[str]:
        return [t.function for t in self.targets]

    def pick(self) -> tuple[str, bytes, str | None]:
        """``(function, payload, token)``; ``token`` is None without an echo check."""
        if len(self.targets) == 1:
            index = 0
        else:
            index = bisect.bisect_right(self._cumulative, self._rng.random() * self._cumulative[-1])
            index = min(index, len(self.targets) - 1)
        payload = next(self._turns[index])
        if self.verify_field is None:
            return self.targets[index].function, payload, None
        token = f"{next(self._counter):x}-{self._rng.getrandbits(32):08x}"
        return self.targets[index].function, with_token(payload, self.verify_field, token), token
