"""fnn-sweep's Hydra plugins, installed as ``hydra_plugins.fnn_sweep`` (pyproject's package-dir).

Hydra instantiates sweepers and launchers only from the ``hydra_plugins`` namespace; its own scan
does not see this package under a default editable install, so ``pipeline.__main__`` registers the
classes itself (``hydra.core.plugins.Plugins.register``, public), which works for editable installs
and wheels alike.
"""
