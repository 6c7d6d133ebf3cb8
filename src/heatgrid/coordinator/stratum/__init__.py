"""The coordinator's Stratum v1 proxy: its own process on the coordinator's database."""

from heatgrid.coordinator.stratum.collector import CollectorPolicy
from heatgrid.coordinator.stratum.config import ProxySettings
from heatgrid.coordinator.stratum.proxy import StratumProxy, parse_pool_url

__all__ = ["CollectorPolicy", "ProxySettings", "StratumProxy", "parse_pool_url"]
