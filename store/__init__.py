"""The database beneath both sides of the service: the connections, a tenant's statements, the
event log's tables and vocabulary. The write side (app) and the read side (projections) both
build on it; it knows neither."""
