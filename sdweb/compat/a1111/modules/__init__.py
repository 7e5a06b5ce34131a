"""A1111's `modules` package as A1111 extensions import it (only inside their import scope, see scope.py).

Each submodule here is an adapter over sdweb: same names, sdweb's data behind them. A `modules.X` that is not
here makes the extension incompatible, with that name as the reason.
"""
