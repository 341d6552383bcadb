"""How the core hands "run N is due" to the workers, without knowing Celery.

``EnqueueRuns`` is the one contract: ``workers.celery_enqueue(settings)`` implements it on the
broker, tests pass a list's ``extend``. It is called only after the runs are committed; when it
raises ``BrokerUnavailableError`` the runs stay ``queued`` and the reconciler sends them later,
so a caller reports that and never creates the runs again.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["EnqueueRuns"]

#: Sends "run N is due" for each id; raises ``BrokerUnavailableError`` when it cannot.
EnqueueRuns = Callable[[list[int]], object]
