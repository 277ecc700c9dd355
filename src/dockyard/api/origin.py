"""Requests a browser sends on behalf of another site; defined in `auth.origin`, which the web
pages share."""

from dockyard.auth.origin import same_origin as same_origin
