"""OPTIONS answers with every method its path serves, as the 405s list them.

Litestar 2 builds a path's OPTIONS handler from the methods its first registered handler has,
and a controller registers its handlers one by one: on a path with several methods OPTIONS
listed one (litestar#4169, fixed in Litestar 3). A controller that serves several methods on a
path declares `allowed_methods` as the path's OPTIONS handler and registers it first, so
Litestar builds none."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, Response
from litestar.handlers import BaseRouteHandler, HTTPRouteHandler
from litestar.routes import HTTPRoute
from litestar.status_codes import HTTP_204_NO_CONTENT


class OptionsFirst(Controller):
    """A controller whose OPTIONS handlers register before its other handlers."""

    def get_route_handlers(self) -> list[BaseRouteHandler]:
        return sorted(
            super().get_route_handlers(), key=lambda handler: not _answers_options(handler)
        )


def allowed_methods(request: Request[Any, Any, Any]) -> Response[None]:
    """204 with Allow: the methods of the route the request matched."""
    [methods] = [
        route.methods
        for route in request.app.routes
        if isinstance(route, HTTPRoute) and route.path_format == request.scope["path_template"]
    ]
    return Response(
        None, status_code=HTTP_204_NO_CONTENT, headers={"Allow": ", ".join(sorted(methods))}
    )


def _answers_options(handler: BaseRouteHandler) -> bool:
    return isinstance(handler, HTTPRouteHandler) and "OPTIONS" in handler.http_methods
