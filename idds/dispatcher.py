"""The scheduling core, now the package :mod:`idds.dispatch`; these names are kept here
until every import names the package."""

from idds.dispatch import (
    Broker,
    Dispatcher,
    LocalBroker,
    Placement,
    TaskOwner,
    connection_lost,
    default_broker,
)

__all__ = [
    "Broker",
    "Dispatcher",
    "LocalBroker",
    "Placement",
    "TaskOwner",
    "connection_lost",
    "default_broker",
]
