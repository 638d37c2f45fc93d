"""A checkpoint and its identity: resolving a name, loading and checking the
folder, its sentence recipe and family, the process registry, the devices,
and the handle a pickle holds. Imports ``_core`` (and ``_storage``).
"""
