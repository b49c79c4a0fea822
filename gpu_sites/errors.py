"""The errors of the sites package.

::

    IddsError
     +-- SiteError          a site or its batch system refused or failed an operation
     +-- SpecError (ValueError)
          +-- SiteSpecError a sites.yaml (or a site given in Python) does not validate
"""

from __future__ import annotations

from idds.errors import IddsError, SpecError


class SiteError(IddsError):
    """A site's batch system or cloud refused an operation (the message names the site)."""


class SiteSpecError(SpecError):
    """A site declaration does not validate; the message names the field."""
