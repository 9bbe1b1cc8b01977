"""Design-space exploration: many compiles of one model, measured by the simulator and the estimate.

``grid`` makes the points, ``evaluate`` measures one, ``runner`` runs them on local processes or Ray,
``store`` keeps the folder (one file per finished point, the tables), ``pareto`` finds the fronts and
``sweep`` ties them together for ``fpgac sweep``.
"""
