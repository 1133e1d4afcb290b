"""The classic group protocol as a pure state machine: no sockets, no threads, an injectable clock.

:mod:`.state` the states; :mod:`.classic` one group; :mod:`.coordinator` all groups of this broker's
offsets partitions; :mod:`.messages` the requests and results; :mod:`.records` what is persisted;
:mod:`.errors` and :mod:`.config` the error codes and settings.
"""
