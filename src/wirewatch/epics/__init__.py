"""EPICS integration over PV Access (optional extra ``epics``: p4p).

- ``ntndarray``: areaDetector ``NTNDArray`` updates <-> ``Frame`` (format ``pva``; no p4p import needed to decode)
- ``pva_format``: the ``pva`` stream format for ``wirewatch.ingest.formats`` (registered by ``PvaSource``)
- ``source``: ``PvaSource``, a p4p monitor feeding the daemon's pipeline (policies latest/queue)
- ``server``: ``PvaServer``, statistics / status / tables / alert alarms / overlay / controls as PVs
- ``alarms``: valueAlarm severities (MINOR/MAJOR, hysteresis), units and descriptions of statistic PVs
- ``simulator``: ``PvaSimulator``, the synthesised scenario as an areaDetector-like PV
- ``daemon``, ``cli``: the hooks ``wirewatch run --format pva --pv-prefix`` and ``wirewatch simulate --format pva`` use
- ``config``: ``EpicsConfig`` (the daemon config's ``epics`` section); ``bench``: ``wirewatch bench pva``

Only ``config``, ``alarms``, ``ntndarray`` and ``pva_format`` may be imported without p4p installed; p4p itself is imported
inside the functions that need it.
"""
