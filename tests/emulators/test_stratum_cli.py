"""``heatgrid emulate miner --stratum URL --user U``: the emulated miner mines into a pool."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from heatgrid.emulators.stratum_pool import StratumPool


def _heatgrid() -> str:
    candidate = Path(sys.executable).with_name("heatgrid")
    found = str(candidate) if candidate.is_file() else shutil.which("heatgrid")
    if found is None:
        pytest.fail("the heatgrid command is missing; install the project (pip install -e .)")
    return found


def test_the_cli_miner_mines_into_a_pool_as_its_user() -> None:
    async def scenario() -> None:
        async with StratumPool(difficulty=2.0**-20, users={"dev7": "pw"}) as pool:
            process = await asyncio.create_subprocess_exec(
                _heatgrid(),
                *("emulate", "miner", "--port", "0", "--web-port", "0", "--speed", "20"),
                *("--stratum", pool.url, "--user", "dev7.rig", "--password", "pw"),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            try:

                async def three_shares() -> None:
                    while pool.stats.accepted_shares["dev7.rig"] < 3:
                        await asyncio.sleep(0.05)

                await asyncio.wait_for(three_shares(), 90)
            finally:
                process.terminate()
                _, stderr = await asyncio.wait_for(process.communicate(), 30)
            assert not pool.stats.rejected, stderr.decode()
            assert pool.stats.accepted_work["dev7.rig"] >= 3 * 2.0**-20

    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--stratum", "http://pool:3333", "--user", "d"], "stratum+tcp://host:port"),
        (["--stratum", "stratum+tcp://127.0.0.1:3333"], "--stratum needs --user"),
        (["--user", "dev1"], "--user needs --stratum"),
    ],
)
def test_bad_stratum_options_exit_2_with_a_message(
    arguments: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from heatgrid.cli.main import main  # noqa: PLC0415

    assert main(["emulate", "miner", "--port", "0", "--web-port", "0", *arguments]) == 2
    assert message in capsys.readouterr().err


def test_a_fixed_pool_and_the_configured_pool_exclude_each_other(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from heatgrid.cli.main import main  # noqa: PLC0415

    arguments = ["--stratum", "stratum+tcp://127.0.0.1:3333", "--user", "d"]
    assert main(["emulate", "miner", *arguments, "--mine-configured-pool"]) == 2
    assert "exclude each other" in capsys.readouterr().err
