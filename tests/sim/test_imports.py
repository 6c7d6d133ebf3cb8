"""The simulator's modules import each other without cycles (lazy imports inside functions too)."""

from __future__ import annotations

import itertools

import grimp


def test_no_module_of_sim_imports_itself_through_another() -> None:
    graph = grimp.build_graph("heatgrid")
    modules = sorted(m for m in graph.modules if m.startswith("heatgrid.sim."))
    assert "heatgrid.sim.run" in modules
    assert "heatgrid.sim.distributed" in modules
    cycles = [
        (first, second)
        for first, second in itertools.combinations(modules, 2)
        if graph.chain_exists(importer=first, imported=second)
        and graph.chain_exists(importer=second, imported=first)
    ]
    assert cycles == []
