"""Enrollment: trade the owner's one-time code for a device id and token, kept in the state file."""

from __future__ import annotations

from heatgrid.agent.client import CoordinatorClient, CoordinatorRefusedError
from heatgrid.agent.config import AgentConfig, CpuDeviceSpec
from heatgrid.agent.state_store import Identity, StateStore
from heatgrid.core.errors import InputError
from heatgrid.protocol import v1

__all__ = ["enroll", "enroll_request"]


def enroll_request(config: AgentConfig, code: str) -> v1.EnrollRequest:
    """Return the enrollment request describing this heater.

    Raises
    ------
    InputError
        If the code is malformed or the heater has no compute device.
    """
    compute = [device for device in config.devices if isinstance(device, CpuDeviceSpec)]
    if not compute:
        raise InputError("devices: a heater needs a compute device to join the network")
    try:
        return v1.EnrollRequest(
            enrollment_code=code,
            device_name=config.heater.name,
            device_kind="cpu",
            hardware=v1.Hardware(
                model=config.heater.model,
                max_power_w=config.max_power_w,
                min_power_w=min(device.min_power_w or device.idle_power_w for device in compute),
                cpu_cores=sum(device.worker_count or 1 for device in compute),
            ),
            has_room=True,
        )
    except ValueError as error:
        raise InputError(f"--code: not a valid enrollment code: {error}") from None


async def enroll(
    config: AgentConfig, store: StateStore, client: CoordinatorClient, code: str
) -> Identity:
    """Enroll with ``code`` and store the identity (device id and token) in ``store``.

    Raises
    ------
    InputError
        If the coordinator refuses the code (the message says why).
    heatgrid.agent.client.CoordinatorUnavailableError
        If the coordinator cannot be reached.
    """
    request = enroll_request(config, code)
    try:
        answer = await client.enroll(request)
    except CoordinatorRefusedError as error:
        raise InputError(f"--code: enrollment refused: {error}") from None
    identity = Identity(
        url=client.url, device_id=answer.device_id, device_token=answer.device_token
    )
    store.save_identity(identity)
    return identity
