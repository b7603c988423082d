"""Resource isolation of execution environments: memory, CPU, /tmp, processes, user, freeze.

``manager`` chooses the mechanisms and hands each environment its ``EnvResources``;
``cgroups`` and ``fallback`` are the two families of mechanisms; ``uids`` leases each
function's sandbox uid host-wide; ``child`` is what a new environment applies to itself, with
``view`` building its private filesystem view (both imported by the zygote, so this package
imports nothing eagerly); ``probe`` finds out what the host allows.
"""
