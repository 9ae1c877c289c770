"""The keys under which a request's own facts wait in its ASGI scope's state, for the layers
and handlers that set and read them (app.http.exchange, app.http.auth, the error handlers)."""

# Where the request's id, its tenant and its rate limit's decision wait.
REQUEST_ID = "request_id"
TENANT_ID = "tenant_id"
DECISION = "rate_limit_decision"
# The database of the caller's cell.
DATABASE = "database"
