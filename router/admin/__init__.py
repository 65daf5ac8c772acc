"""The admin side of the gateway (issue 6): gateway keys created through an HTTP API protected by
an admin key, and spend reports over the ledger.

* :data:`admin_router` - the FastAPI router (``api.include_router(admin_router)``).
* :class:`DynamicKeys` - admin-created keys for :class:`~router.auth.KeyRing`, kept in memory
  and refreshed from the store in the background.
* :mod:`router.admin.spend` - reports and the ledger-equals-counters check (also ``router
  spend``).

See docs/budgets.md, "Keys and spend reports".
"""

from router.admin.keys import DynamicKeys, dynamic_keys_for
from router.admin.routes import admin_router

__all__ = ["DynamicKeys", "admin_router", "dynamic_keys_for"]
