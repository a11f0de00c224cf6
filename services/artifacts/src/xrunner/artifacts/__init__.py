"""The artifact service: indexes stored artifacts and hands out short-lived signed URLs."""
