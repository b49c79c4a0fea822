"""The scheduling core: claim the tasks of the owners this head holds, run them on Ray,
record their results in group commits, retry, and call the owners back.

Ray tasks are submitted with ``max_retries=0``: retries happen here, as new attempts.

One module per job:

- :mod:`~idds.dispatch.owner`: what the dispatcher drives (:class:`TaskOwner`) and where it
  runs it (:class:`Broker`, :class:`Placement`, :class:`LocalBroker`, :func:`default_broker`);
- :mod:`~idds.dispatch.leases`: one head runs an owner at a time;
- :mod:`~idds.dispatch.ray_side`: attempts launched on Ray, their outcomes, the channel;
- :mod:`~idds.dispatch.buffer`: what came in and is not committed yet;
- :mod:`~idds.dispatch.outage`: a database that went away, waited out and reconciled;
- :mod:`~idds.dispatch.loop`: the :class:`Dispatcher` that composes them.
"""

from idds.dispatch.buffer import CommitBuffer, Unrecorded
from idds.dispatch.loop import INTERRUPT_GRACE_S, Dispatcher
from idds.dispatch.outage import connection_lost
from idds.dispatch.owner import Broker, LocalBroker, Placement, TaskOwner, default_broker
from idds.dispatch.ray_side import InFlight

__all__ = [
    "INTERRUPT_GRACE_S",
    "Broker",
    "CommitBuffer",
    "Dispatcher",
    "InFlight",
    "LocalBroker",
    "Placement",
    "TaskOwner",
    "Unrecorded",
    "connection_lost",
    "default_broker",
]
