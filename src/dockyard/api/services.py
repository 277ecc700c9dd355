"""The registry and access machinery a request reaches through its scope; defined in
`auth.services`, below both the API and the web pages, which read it alike."""

from dockyard.auth.services import SERVICES_KEY as SERVICES_KEY
from dockyard.auth.services import Services as Services
