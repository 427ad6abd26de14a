"""The real Z-Wave JS stack (zwave-js mock-server and zwave-server) with simulated locks."""

from simulators.zwave.control import ZWaveSimulatorControl
from simulators.zwave.stack import LockSpec, StackError, ZWaveStack, missing_packages

__all__ = ["LockSpec", "StackError", "ZWaveSimulatorControl", "ZWaveStack", "missing_packages"]
