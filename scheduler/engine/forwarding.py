"""The hook through which a Scheduler may hand a synchronous invocation to another process
that has an idle environment for it (cluster mode's warm-first routing). The engine only asks;
how and where is the hook's business."""

from __future__ import annotations

from typing import Protocol

from .invocation import InvocationResult


class InvocationRouter(Protocol):
    async def forward(
        self,
        function_name: str,
        version: str,
        qualifier: str | None,
        payload: bytes,
        *,
        request_id: str | None,
        client_context: str | None,
        cognito_identity: str | None,
        trace_id: str | None,
        tenant_id: str | None,
    ) -> InvocationResult | None:
        """The result of the invocation run elsewhere, or None: run it here. ``version`` is
        what it would run here ($LATEST, or the version its qualifier resolved to);
        ``qualifier`` is as the caller named it. Raises a SchedulerError when it was handed
        over and the other side failed."""
        ...
