"""rackpulse's lower layer: the reading model, metric catalog, driver interface and protocol drivers.

Nothing in this package imports `agent`; a third-party driver depends on `drivers` alone.
"""
