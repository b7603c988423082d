"""The engine: functions, admission, pools, execution environments and the zygote client.

Everything that decides where an invocation runs and watches the process it runs in lives
here; the server side (``api/``, ``events/``, templates, the CLI, the load harness) reaches it
through :class:`~scheduler.engine.scheduler.Scheduler` and the frozen
:class:`~scheduler.engine.status.FunctionStatus` snapshots it hands out. Nothing is imported
here on purpose: the zygote imports ``scheduler.engine.protocol`` and must not pull asyncio and
the pools into every environment.
"""
