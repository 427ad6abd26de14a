"""The real Z-Wave JS stack (zwave-js mock-server and zwave-server) with simulated locks.

`stack` starts and stops it (without importing zwave-js-server-python, so the demo can ask
whether it is installed); `control` is its simulator control API.
"""
