"""Settings of a Stratum proxy process."""

from __future__ import annotations

from dataclasses import dataclass

from heatgrid.core.errors import InputError, require_positive
from heatgrid.mining.stratum import DEFAULT_MAX_LINE_BYTES
from heatgrid.mining.vardiff import DEFAULT_SHARE_INTERVAL_S

__all__ = ["ProxySettings"]


@dataclass(frozen=True)
class ProxySettings:
    """What a Stratum proxy needs to know.

    Attributes
    ----------
    database_url : str
        The coordinator's database (shares, rejects and mining passwords).
    pool_url : str
        The upstream pool, ``stratum+tcp://HOST:PORT``.
    pool_user, pool_password : str
        The operator's pool account.
    listen_host, listen_port : str, int
        Where miners connect (port 0: the OS chooses).
    share_interval_s : float
        Vardiff aims at one share per miner this often [s].
    start_difficulty, min_difficulty, max_difficulty : float
        A miner's first share difficulty and the bounds of vardiff [-]; the minimum is low
        enough for CPU test miners (shares below the pool's difficulty are counted, not sent).
    worker_per_device : bool
        Send shares upstream as ``POOL_USER.DEVICE_ID`` (authorized once per device), so the
        pool's statistics show each heater; a pool that refuses such a worker gets
        ``POOL_USER``.
    handshake_timeout_s : float
        A connection that has not authorized within this long is closed [s].
    idle_timeout_s : float
        An authorized connection silent for this long is closed [s] (a miner curtailed to
        sleep may send nothing for a while; half-open connections are found sooner by TCP
        keepalive probes, after about 2 minutes). Both are checked once a second, so a
        connection is closed within a second after its timeout.
    max_line_bytes : int
        A longer line closes the connection [bytes].
    max_batch : int
        Most shares committed in one transaction (group commit across miners) [-].
    """

    database_url: str
    pool_url: str
    pool_user: str
    pool_password: str = "x"
    listen_host: str = "0.0.0.0"
    listen_port: int = 3333
    share_interval_s: float = DEFAULT_SHARE_INTERVAL_S
    start_difficulty: float = 1024.0
    min_difficulty: float = 2.0**-20
    max_difficulty: float = 2.0**40
    worker_per_device: bool = True
    handshake_timeout_s: float = 30.0
    idle_timeout_s: float = 3600.0
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES
    max_batch: int = 2000

    def __post_init__(self) -> None:
        require_positive("share_interval_s", self.share_interval_s)
        require_positive("min_difficulty", self.min_difficulty)
        require_positive("handshake_timeout_s", self.handshake_timeout_s)
        require_positive("idle_timeout_s", self.idle_timeout_s)
        if not self.min_difficulty <= self.max_difficulty:
            raise InputError("min_difficulty must not exceed max_difficulty")
        if not self.min_difficulty <= self.start_difficulty <= self.max_difficulty:
            raise InputError(
                f"start_difficulty must lie within [{self.min_difficulty:g}, "
                f"{self.max_difficulty:g}], got {self.start_difficulty:g}"
            )
        if not self.pool_user:
            raise InputError("pool_user: the pool account's user name must not be empty")
        if not 0 <= self.listen_port <= 65535:
            raise InputError(f"listen_port must be 0 to 65535, got {self.listen_port}")
        if self.max_line_bytes < 512 or self.max_batch < 1:
            raise InputError("max_line_bytes must be >= 512 and max_batch >= 1")
