"""Classification: a pure function from the parts of a request to an ``Action``.

``router.classify`` reads a request over the route table (``routes``), after the
header, query and path checks (``checks``), parsing a JSON body as Nova does
(``body``). Nothing that any of them refuses is ever forwarded.
"""

from sidecar.classify.action import KINDS, Action
from sidecar.classify.body import parse_json_body
from sidecar.classify.checks import check_headers, check_query, effective_microversion, normalise_path
from sidecar.classify.router import Classifier, classify
from sidecar.classify.routes import RouteTable, load_route_table
from sidecar.errors import LimitExceeded

__all__ = [
    "KINDS",
    "Action",
    "Classifier",
    "LimitExceeded",
    "RouteTable",
    "check_headers",
    "check_query",
    "classify",
    "effective_microversion",
    "load_route_table",
    "normalise_path",
    "parse_json_body",
]
