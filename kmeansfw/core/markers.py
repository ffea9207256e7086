"""The pluggy markers of the ``kmeansfw`` project."""

import pluggy

PROJECT = "kmeansfw"

#: Marks a function in :mod:`kmeansfw.core.hookspecs` as a hook specification.
hookspec = pluggy.HookspecMarker(PROJECT)
#: Marks a method or function as the implementation of a kmeansfw hook.
hookimpl = pluggy.HookimplMarker(PROJECT)
