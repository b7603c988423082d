"""Resource isolation of execution environments: memory, CPU, /tmp, processes, user, freeze.

``manager`` chooses the mechanisms and hands each environment its ``EnvResources``;
``cgroups`` and ``fallback`` are the two families of mechanisms; ``child`` is what a new
environment applies to itself (imported by the zygote, so this package imports nothing
eagerly); ``probe`` finds out what the host allows.
"""
