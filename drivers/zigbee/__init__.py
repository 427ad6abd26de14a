"""Zigbee door locks through zigpy and its radio libraries (or the simulated radio)."""

from drivers.zigbee.driver import ZigbeeDriver

__all__ = ["ZigbeeDriver"]
