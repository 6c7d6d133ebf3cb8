"""Enrollment: trade the owner's one-time code for a device id and token, kept in the state file."""

from __future__ import annotations

from heatgrid.agent.client import CoordinatorClient, CoordinatorRefusedError
from heatgrid.agent.config import AgentConfig, CpuDeviceSpec, NvmlDeviceSpec, PyasicDeviceSpec
from heatgrid.agent.state_store import Identity, StateStore
from heatgrid.core.errors import InputError
from heatgrid.protocol import v1

__all__ = ["enroll", "enroll_request", "heater_hardware"]


def enroll_request(config: AgentConfig, code: str) -> v1.EnrollRequest:
    """Return the enrollment request describing this heater.

    Raises
    ------
    InputError
        If the code is malformed or the heater has no compute device.
    """
    hardware = heater_hardware(config)
    try:
        return v1.EnrollRequest(
            enrollment_code=code,
            device_name=config.heater.name,
            device_kind=hardware[0],
            hardware=hardware[1],
            has_room=True,
            country_code=config.heater.country_code,
        )
    except ValueError as error:
        raise InputError(f"--code: not a valid enrollment code: {error}") from None


def heater_hardware(config: AgentConfig) -> tuple[v1.DeviceKind, v1.Hardware]:
    """Return the heater's kind and hardware: its main compute device's (GPU, ASIC, CPU).

    Sent at enrollment, and in every heartbeat so that the coordinator follows a changed
    configuration (a bigger power limit, another GPU).

    Raises
    ------
    InputError
        If the heater has no compute device.
    """
    gpus = [d for d in config.devices if isinstance(d, NvmlDeviceSpec)]
    miners = [d for d in config.devices if isinstance(d, PyasicDeviceSpec)]
    cpus = [d for d in config.devices if isinstance(d, CpuDeviceSpec)]
    if gpus:
        vram = [d.vram_gb for d in gpus if d.vram_gb is not None]
        return "gpu", v1.Hardware(
            model=config.heater.model,
            max_power_w=config.max_power_w,
            min_power_w=min(d.min_power_w or 0.0 for d in gpus),
            vram_gb=max(vram) if vram else None,
        )
    if miners:
        return "asic", v1.Hardware(
            model=config.heater.model,
            max_power_w=config.max_power_w,
            min_power_w=min(d.min_power_w for d in miners),
        )
    if cpus:
        return "cpu", v1.Hardware(
            model=config.heater.model,
            max_power_w=config.max_power_w,
            min_power_w=min(d.min_power_w or d.idle_power_w for d in cpus),
            cpu_cores=sum(d.worker_count or 1 for d in cpus),
        )
    raise InputError("devices: a heater needs a compute device (cpu, nvml or pyasic) to join")


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
