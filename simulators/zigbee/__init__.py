"""A virtual zigpy radio with simulated door locks that speak real ZDO/ZCL frames."""

from simulators.zigbee.radio import SimulatedRadio

__all__ = ["SimulatedRadio"]
