"""Z-Wave door locks through a Z-Wave JS server (zwave-js-server-python), or the simulated stack."""

from drivers.zwave.driver import ZWaveDriver

__all__ = ["ZWaveDriver"]
