"""The realtime edge: pushes job events and logs to browsers (SSE) and attaches terminals (WebSocket)."""
